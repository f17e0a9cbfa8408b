import { BaseContract, getAddress, toQuantity } from "ethers";
import type { ContractRunner, JsonRpcProvider } from "ethers";
import * as typechain from "../typechain-types";
import { ClearingHouse__factory, RiskManager__factory, Vault__factory } from "../typechain-types";
import type { ClearingHouse, RiskManager, Vault } from "../typechain-types";
import type { BlockRef, ChainSource, EventDecoder, RawLog } from "./indexer";
import type { Deployment } from "./config";
import type { Logger } from "./log";

/** The indexer's view of an RPC node: raw JSON-RPC, no ethers object overhead. */
export class RpcChainSource implements ChainSource {
  constructor(
    private readonly provider: JsonRpcProvider,
    private readonly decoder: EventDecoder,
  ) {}

  async blockNumber(): Promise<number> {
    return Number(await this.provider.send("eth_blockNumber", []));
  }

  async block(n: number | "latest"): Promise<BlockRef | null> {
    const b = await this.provider.send("eth_getBlockByNumber", [n === "latest" ? "latest" : toQuantity(n), false]);
    if (!b) return null;
    return { number: Number(b.number), hash: b.hash, parentHash: b.parentHash, timestamp: Number(b.timestamp) };
  }

  /** Logs of the protocol in [from, to]; a range the node refuses as too large is split in halves. */
  async logs(from: number, to: number): Promise<RawLog[]> {
    const f = this.decoder.filter();
    try {
      const raw: any[] = await this.provider.send("eth_getLogs", [
        { address: f.address, topics: f.topics, fromBlock: toQuantity(from), toBlock: toQuantity(to) },
      ]);
      return raw.map((l) => ({
        address: l.address,
        topics: l.topics,
        data: l.data,
        blockNumber: Number(l.blockNumber),
        blockHash: l.blockHash,
        logIndex: Number(l.logIndex),
        transactionHash: l.transactionHash,
        removed: Boolean(l.removed),
      }));
    } catch (e) {
      const msg = String((e as Error)?.message ?? e);
      if (to > from && /more than|too many|limit|range|exceed|too large|response size/i.test(msg)) {
        const mid = Math.floor((from + to) / 2);
        return [...(await this.logs(from, mid)), ...(await this.logs(mid + 1, to))];
      }
      throw e;
    }
  }
}

export interface Contracts {
  clearingHouse: ClearingHouse;
  vault: Vault;
  riskManager: RiskManager;
  /** Where healthBatch lives: the SigmaLens on deployments that have one, else the ClearingHouse. */
  health: BaseContract;
  healthVia: "lens" | "clearingHouse";
}

type Factory = { connect(address: string, runner?: ContractRunner | null): BaseContract };

export function connectContracts(d: Deployment, runner: ContractRunner): Contracts {
  const clearingHouse = ClearingHouse__factory.connect(d.contracts.clearingHouse, runner);
  // Looked up at run time: the lens bindings exist only once the contracts that have it are compiled.
  const tc = typechain as unknown as Record<string, Factory | undefined>;
  const lensFactory = tc["SigmaLens__factory"] ?? tc["ISigmaLens__factory"];
  const useLens = Boolean(d.contracts.lens && lensFactory);
  return {
    clearingHouse,
    vault: Vault__factory.connect(d.contracts.vault, runner),
    riskManager: RiskManager__factory.connect(d.contracts.riskManager, runner),
    health: useLens ? lensFactory!.connect(d.contracts.lens!, runner) : clearingHouse,
    healthVia: useLens ? "lens" : "clearingHouse",
  };
}

/** Functions added to the contracts after the first release; each job path checks for its function. */
export interface Capabilities {
  /** RiskManager.pokeVolatility(uint256) */
  pokeVolatility: boolean;
  /** RiskManager.pendingRounds(uint256) view */
  pendingRounds: boolean;
  /** RiskManager.pokeNeeded(uint256) view: whether a poke would change anything */
  pokeNeeded: boolean;
  /** ClearingHouse.flagMarginCall(address) */
  flagMarginCall: boolean;
  /** ClearingHouse.liquidateBatch(address[]) */
  liquidateBatch: boolean;
  /** healthBatch's AccountSummary has `status` and `marginCallDeadline`. */
  summaryStatus: boolean;
  /** healthBatch(address[]) on the health contract (lens or ClearingHouse). */
  healthBatch: boolean;
  /** ClearingHouse.multicall(bytes[]) (the backstop reads through it when present). */
  multicall: boolean;
  /** SigmaLens.marketSnapshots(): the liquidation job rescans every account only when it changes. */
  marketSnapshots: boolean;
  /** Why each missing one is missing (for the startup log). */
  missing: Record<string, string>;
}

/**
 * A function is usable when the compiled ABI (typechain) has it AND the deployed bytecode contains its
 * selector (the dispatcher pushes every external selector), so an older deployment read with newer
 * bindings does not get calls it cannot answer.
 */
export async function detectCapabilities(provider: JsonRpcProvider, c: Contracts): Promise<Capabilities> {
  const codeCache = new Map<string, string>();
  const code = async (x: BaseContract) => {
    const addr = getAddress(await x.getAddress());
    if (!codeCache.has(addr)) codeCache.set(addr, (await provider.getCode(addr)).toLowerCase());
    return codeCache.get(addr)!;
  };
  const missing: Record<string, string> = {};
  const has = async (x: BaseContract, name: string, signature: string): Promise<boolean> => {
    let fragment = null;
    try {
      fragment = x.interface.getFunction(signature) ?? x.interface.getFunction(name);
    } catch {
      fragment = null;
    }
    if (!fragment) {
      missing[name] = "not in the compiled ABI (run `npx hardhat compile` after updating the contracts)";
      return false;
    }
    const sel = fragment.selector.slice(2).toLowerCase().replace(/^(00)+/, "");
    if (!(await code(x)).includes(sel)) {
      missing[name] = "the deployed contract does not have it (older deployment)";
      return false;
    }
    return true;
  };
  const summaryStatus = (() => {
    try {
      const f = c.health.interface.getFunction("healthBatch");
      const comps = f?.outputs?.[0]?.arrayChildren?.components ?? [];
      const ok = comps.some((p) => p.name === "status") && comps.some((p) => p.name === "marginCallDeadline");
      if (!ok) missing["AccountSummary.status"] = "healthBatch's AccountSummary has no status/marginCallDeadline";
      return ok;
    } catch {
      return false;
    }
  })();
  return {
    pokeVolatility: await has(c.riskManager, "pokeVolatility", "pokeVolatility(uint256)"),
    pendingRounds: await has(c.riskManager, "pendingRounds", "pendingRounds(uint256)"),
    pokeNeeded: await has(c.riskManager, "pokeNeeded", "pokeNeeded(uint256)"),
    flagMarginCall: await has(c.clearingHouse, "flagMarginCall", "flagMarginCall(address)"),
    liquidateBatch: await has(c.clearingHouse, "liquidateBatch", "liquidateBatch(address[])"),
    summaryStatus,
    healthBatch: await has(c.health, "healthBatch", "healthBatch(address[])"),
    multicall: await has(c.clearingHouse, "multicall", "multicall(bytes[])"),
    marketSnapshots: await has(c.health, "marketSnapshots", "marketSnapshots()"),
    missing,
  };
}

export function logCapabilities(log: Logger, caps: Capabilities, c: Contracts): void {
  const { missing, ...flags } = caps;
  log.info({ capabilities: flags, healthVia: c.healthVia }, "contract capabilities");
  for (const [name, why] of Object.entries(missing)) log.info({ function: name, why }, `${name}: unavailable; the paths that need it are skipped`);
}
