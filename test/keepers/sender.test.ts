import { expect } from "chai";
import { BaseContract, makeError, parseUnits, Transaction, Wallet } from "ethers";
import type { JsonRpcProvider } from "ethers";
import { TxSender, Action, SenderOptions } from "../../keepers/sender";
import { classifyRevert, decodeRevert, errorInterface, isNonceError } from "../../keepers/errors";
import { createLogger } from "../../keepers/log";
import { KeeperMetrics } from "../../keepers/metrics";
import { ClearingHouse__factory, RiskManager__factory, Vault__factory } from "../../typechain-types";
import { CH, chIface, addr } from "./fake-chain";
import { metricSum, parseMetrics } from "./helpers";

const errors = errorInterface(ClearingHouse__factory.abi, RiskManager__factory.abi, Vault__factory.abi);
const revertData = (name: string, args: unknown[]) => chIface.encodeErrorResult(name, args);
/** The shape ethers gives a reverted eth_call / estimateGas. */
const callException = (data: string) => makeError("execution reverted", "CALL_EXCEPTION", { action: "call", data, reason: null, transaction: { to: CH, data: "0x" }, invocation: null, revert: null });

interface Sent {
  tx: Transaction;
}

/** A scriptable stand-in for the provider and the contract. */
class Fake {
  simulate: (method: string, args: unknown[]) => Promise<unknown> = async () => 1n;
  estimate: () => Promise<bigint> = async () => 100_000n;
  baseFee = parseUnits("1", "gwei");
  tip = parseUnits("0.5", "gwei");
  pendingNonce = 7;
  nonceQueries = 0;
  broadcasts: Sent[] = [];
  /** Decides what broadcasting the i-th transaction does. */
  onBroadcast: (i: number, tx: Transaction) => void = () => undefined;
  /** Decides what waiting for the i-th transaction does. */
  onWait: (i: number, tx: Transaction) => Promise<unknown> = async (_i, tx) => receipt(tx, 1);
  known = new Set<string>();
  replay: () => Promise<unknown> = async () => "0x";

  provider(): JsonRpcProvider {
    const self = this;
    return {
      async estimateGas() {
        return self.estimate();
      },
      async send(method: string) {
        if (method === "eth_getBlockByNumber") return { baseFeePerGas: "0x" + self.baseFee.toString(16) };
        if (method === "eth_maxPriorityFeePerGas") return "0x" + self.tip.toString(16);
        throw new Error(`unexpected ${method}`);
      },
      async getTransactionCount() {
        self.nonceQueries++;
        return self.pendingNonce;
      },
      async broadcastTransaction(signed: string) {
        const tx = Transaction.from(signed);
        const i = self.broadcasts.length;
        self.onBroadcast(i, tx);
        self.broadcasts.push({ tx });
        self.known.add(tx.hash!);
        return { hash: tx.hash, wait: () => self.onWait(i, tx) };
      },
      async getTransaction(hash: string) {
        return self.known.has(hash) ? { hash, wait: async () => receipt({ hash } as Transaction, 1) } : null;
      },
      async call() {
        return self.replay();
      },
    } as unknown as JsonRpcProvider;
  }

  contract(): BaseContract {
    const self = this;
    return {
      interface: chIface,
      getAddress: async () => CH,
      getFunction: (m: string) => ({ staticCall: (...a: unknown[]) => self.simulate(m, a.slice(0, -1)) }),
    } as unknown as BaseContract;
  }
}

function receipt(tx: Pick<Transaction, "hash">, status: number) {
  return { hash: tx.hash, status, blockNumber: 10, gasUsed: 50_000n };
}

function setup(o: Partial<SenderOptions> = {}) {
  const fake = new Fake();
  const logs: any[] = [];
  const log = createLogger("debug", { write: (s: string) => logs.push(JSON.parse(s)) } as any);
  const metrics = new KeeperMetrics(false);
  const sender = new TxSender(fake.provider(), new Wallet(Wallet.createRandom().privateKey), {
    dryRun: false,
    maxFeeGwei: 50,
    liquidationMaxFeeGwei: 200,
    feeBumpPercent: 20,
    txTimeoutMs: 1000,
    log,
    metrics,
    errors,
    chainId: 31337n,
    feeCacheMs: 0,
    ...o,
  });
  const action = (extra: Partial<Action> = {}): Action => ({ job: "liquidations", action: "liquidate", target: addr(1), contract: fake.contract(), method: "liquidate", args: [addr(1)], liquidation: true, ...extra });
  const m = async () => parseMetrics(await metrics.registry.metrics());
  return { fake, logs, metrics, sender, action, m };
}

describe("keeper sender", () => {
  describe("revert decoding and classification", () => {
    it("decodes protocol errors from every shape nodes and ethers give them", () => {
      const data = revertData("ClearingHouseAccountHealthy", [addr(1), 5n, 6n]);
      expect(decodeRevert(callException(data), errors).name).to.equal("ClearingHouseAccountHealthy");
      expect(decodeRevert({ error: { code: 3, message: "execution reverted", data } }, errors).name).to.equal("ClearingHouseAccountHealthy");
      expect(decodeRevert({ info: { error: { data: { data } } } }, errors).name).to.equal("ClearingHouseAccountHealthy");
      const hh = new Error("VM Exception while processing transaction: reverted with custom error 'ClearingHouseOrderNotFound(3)'");
      expect(decodeRevert(hh, errors).name).to.equal("ClearingHouseOrderNotFound");
      // Errors the RiskManager's oracle library raises are known too.
      expect(errors.getError("OracleStale")).to.not.equal(null);
    });

    it("classifies lost races, waits, expiry and real failures", () => {
      expect(classifyRevert("ClearingHouseOrderNotFound")).to.equal("raced");
      expect(classifyRevert("ClearingHouseAccountHealthy")).to.equal("raced");
      expect(classifyRevert("ClearingHouseCannotFlag")).to.equal("raced");
      expect(classifyRevert("ClearingHouseOrderNotReady")).to.equal("wait");
      expect(classifyRevert("OracleStale")).to.equal("wait");
      expect(classifyRevert("ClearingHouseLiquidationRateLimited")).to.equal("wait");
      expect(classifyRevert("ClearingHouseOrderExpired")).to.equal("expired");
      expect(classifyRevert("ClearingHouseOnlySelf")).to.equal("failed");
      expect(classifyRevert(null)).to.equal("failed");
      expect(isNonceError(new Error("nonce too low: next nonce 8, tx nonce 7"))).to.equal(true);
      expect(isNonceError(makeError("nonce has already been used", "NONCE_EXPIRED"))).to.equal(true);
      expect(isNonceError(new Error("insufficient funds"))).to.equal(false);
    });
  });

  describe("simulation", () => {
    for (const name of ["ClearingHouseAccountHealthy", "ClearingHouseOrderNotFound"]) {
      it(`a simulation reverting with ${name} is a lost race: logged at info as "raced", nothing sent`, async () => {
        const { fake, logs, sender, action, m } = setup();
        const args = name === "ClearingHouseAccountHealthy" ? [addr(1), 1n, 2n] : [4n];
        fake.simulate = async () => {
          throw callException(revertData(name, args));
        };
        const out = await sender.execute(action());
        expect(out).to.deep.include({ kind: "raced", stage: "simulation", reason: name });
        expect(fake.broadcasts).to.have.length(0);
        const met = await m();
        expect(metricSum(met, "keeper_txs_raced_total", { stage: "simulation" })).to.equal(1);
        expect(metricSum(met, "keeper_txs_failed_total")).to.equal(0);
        const line = logs.find((l) => /raced/.test(l.msg));
        expect(line.level).to.equal("info");
        expect(logs.filter((l) => l.level === "error")).to.deep.equal([]);
      });
    }

    it("a simulation reverting for a reason the keeper does not expect is an error, and nothing is sent", async () => {
      const { fake, logs, sender, action, m } = setup();
      fake.simulate = async () => {
        throw callException(revertData("ClearingHouseOnlySelf", []));
      };
      const out = await sender.execute(action());
      expect(out).to.deep.include({ kind: "failed", stage: "simulation" });
      expect(fake.broadcasts).to.have.length(0);
      expect(metricSum(await m(), "keeper_txs_failed_total")).to.equal(1);
      expect(logs.some((l) => l.level === "error")).to.equal(true);
    });

    it("backs off a target whose simulation keeps failing instead of failing every iteration", async () => {
      const { fake, sender, action, m } = setup();
      let sims = 0;
      fake.simulate = async () => {
        sims++;
        throw callException(revertData("ClearingHouseOnlySelf", []));
      };
      expect((await sender.execute(action())).kind).to.equal("failed");
      expect(await sender.execute(action())).to.deep.equal({ kind: "skipped", reason: "cooldown after failed simulation" });
      expect(sims).to.equal(1);
      expect(metricSum(await m(), "keeper_txs_failed_total")).to.equal(1);
      // Other targets are not affected.
      fake.simulate = async () => 1n;
      expect((await sender.execute(action({ target: addr(2), args: [addr(2)] }))).kind).to.equal("confirmed");
    });

    it("not-yet reverts (order not ready, stale oracle) wait quietly", async () => {
      const { fake, logs, sender, action } = setup();
      fake.simulate = async () => {
        throw callException(revertData("ClearingHouseOrderNotReady", [1n, 2n]));
      };
      expect(await sender.execute(action())).to.deep.equal({ kind: "wait", reason: "ClearingHouseOrderNotReady" });
      expect(logs.filter((l) => l.level !== "debug")).to.deep.equal([]);
    });

    it("an RPC failure during simulation is not a revert: it propagates for the loop to back off", async () => {
      const { fake, sender, action } = setup();
      fake.simulate = async () => {
        throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:8545"), { code: "ECONNREFUSED" });
      };
      let thrown: unknown;
      await sender.execute(action()).catch((e) => (thrown = e));
      expect(String(thrown)).to.include("ECONNREFUSED");
    });

    it("--dry-run simulates but never sends", async () => {
      const { fake, sender, action } = setup({ dryRun: true });
      expect((await sender.execute(action())).kind).to.equal("dry-run");
      expect(fake.broadcasts).to.have.length(0);
    });
  });

  describe("sending", () => {
    it("sends EIP-1559 transactions with consecutive nonces from one nonce manager", async () => {
      const { fake, sender, action } = setup();
      const a = await sender.execute(action());
      const b = await sender.execute(action());
      expect(a.kind).to.equal("confirmed");
      expect(b.kind).to.equal("confirmed");
      expect(fake.broadcasts.map((x) => x.tx.nonce)).to.deep.equal([7, 8]);
      expect(fake.nonceQueries).to.equal(1);
      const tx = fake.broadcasts[0].tx;
      expect(tx.type).to.equal(2);
      expect(tx.maxFeePerGas).to.equal(2n * fake.baseFee + fake.tip);
      expect(tx.gasLimit).to.equal(125_000n);
    });

    it("caps fees, with a higher cap for liquidations, and skips when the base fee is above the cap", async () => {
      const { fake, sender, action } = setup({ maxFeeGwei: 50, liquidationMaxFeeGwei: 200 });
      fake.baseFee = parseUnits("80", "gwei");
      expect(await sender.execute(action({ liquidation: false, action: "execute" }))).to.deep.equal({ kind: "skipped", reason: "fee-cap" });
      const out = await sender.execute(action());
      expect(out.kind).to.equal("confirmed");
      expect(fake.broadcasts[0].tx.maxFeePerGas).to.equal(parseUnits("160.5", "gwei"));
      fake.baseFee = parseUnits("150", "gwei");
      await sender.execute(action());
      expect(fake.broadcasts[1].tx.maxFeePerGas).to.equal(parseUnits("200", "gwei"));
    });

    it("resynchronizes the nonce after a nonce error and retries", async () => {
      const { fake, sender, action } = setup();
      let calls = 0;
      fake.onBroadcast = () => {
        if (calls++ === 0) {
          fake.pendingNonce = 9; // someone else used our key
          throw new Error("nonce too low: next nonce 9, tx nonce 7");
        }
      };
      const out = await sender.execute(action());
      expect(out.kind).to.equal("confirmed");
      expect(fake.broadcasts.map((b) => b.tx.nonce)).to.deep.equal([9]);
    });

    it("a resend the node already has counts as sent", async () => {
      const { fake, sender, action } = setup();
      fake.onBroadcast = (_i, tx) => {
        fake.known.add(tx.hash!);
        throw new Error("already known");
      };
      expect((await sender.execute(action())).kind).to.equal("confirmed");
    });

    it("a transaction that reverts on-chain because another keeper was first is classified as raced", async () => {
      const { fake, logs, sender, action, m } = setup();
      fake.onWait = async (_i, tx) => {
        throw makeError("transaction execution reverted", "CALL_EXCEPTION", { action: "sendTransaction", data: null, reason: null, invocation: null, revert: null, transaction: { to: CH, from: addr(0), data: "" }, receipt: receipt(tx, 0) as any });
      };
      fake.replay = async () => {
        throw callException(revertData("ClearingHouseAccountHealthy", [addr(1), 1n, 2n]));
      };
      const out = await sender.execute(action());
      expect(out).to.deep.include({ kind: "raced", stage: "tx" });
      const met = await m();
      expect(metricSum(met, "keeper_txs_raced_total", { stage: "tx" })).to.equal(1);
      expect(metricSum(met, "keeper_txs_failed_total")).to.equal(0);
      expect(logs.filter((l) => l.level === "error")).to.deep.equal([]);
    });

    it("handles TRANSACTION_REPLACED: repriced is ours and confirmed, cancelled/replaced is dropped and resyncs the nonce", async () => {
      const { fake, sender, action } = setup();
      fake.onWait = async (i, tx) => {
        throw makeError("transaction was replaced", "TRANSACTION_REPLACED", {
          cancelled: i !== 0,
          reason: i === 0 ? "repriced" : "cancelled",
          replacement: {} as any,
          hash: tx.hash!,
          receipt: receipt(tx, 1) as any,
        });
      };
      expect((await sender.execute(action())).kind).to.equal("confirmed");
      expect((await sender.execute(action())).kind).to.equal("dropped");
      expect(sender.nonces!.peek()).to.equal(null);
    });

    it("replaces a transaction not mined in time with fees raised by --fee-bump-percent, within the cap", async () => {
      const { fake, sender, action, m } = setup({ feeBumpPercent: 20 });
      fake.onWait = async (i, tx) => {
        if (i === 0) throw makeError("timeout", "TIMEOUT", { operation: "wait", reason: "timeout" } as any);
        return receipt(tx, 1);
      };
      const out = await sender.execute(action());
      expect(out.kind).to.equal("confirmed");
      expect(fake.broadcasts).to.have.length(2);
      const [first, second] = fake.broadcasts.map((b) => b.tx);
      expect(second.nonce).to.equal(first.nonce);
      expect(second.maxFeePerGas! * 100n).to.be.at.least(first.maxFeePerGas! * 120n);
      expect(second.maxPriorityFeePerGas! * 100n).to.be.at.least(first.maxPriorityFeePerGas! * 120n);
      expect(metricSum(await m(), "keeper_txs_replaced_total")).to.equal(1);
    });

    it("a simulation whose result says nothing is left to do is reported as raced and not sent", async () => {
      const { fake, sender, action } = setup();
      fake.simulate = async () => [0n, 0n];
      const out = await sender.execute(action({ method: "liquidateBatch", nothingToDo: (r) => ((r as bigint[])[0] === 0n ? "NoneLiquidatable" : null) }));
      expect(out).to.deep.include({ kind: "raced", reason: "NoneLiquidatable" });
      expect(fake.broadcasts).to.have.length(0);
    });
  });
});
