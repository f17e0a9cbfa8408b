/**
 * `SigmaClient`: an integrator's handle on a Sigma deployment. Reads chain state in one block, computes
 * quotes and margin previews locally with the contracts' own math (sdk/margin.ts), and builds and sends
 * orders, deposits (also with an ERC-2612 permit) and withdrawals through the typechain bindings.
 */
import { Interface, Signature, TypedDataEncoder } from "ethers";
import type {
  BlockTag,
  ContractRunner,
  ContractTransactionReceipt,
  ContractTransactionResponse,
  Provider,
  Signer,
  TypedDataDomain,
} from "ethers";
import { ClearingHouse__factory, Vault__factory } from "../typechain-types";
import {
  AccountParams,
  AccountState,
  AccountStatus,
  AccountSummary,
  MarketRisk,
  MarketSnapshot,
  MarketState,
  Position,
  TradePreview,
  accountSummary as computeSummary,
  acceptablePriceWithSlippage,
  ceilDiv,
  liquidationPriceD18,
  makeSnapshot,
  notionalUpD18,
  previewTrade,
  quote as quoteMath,
  MAX_ACCEPTABLE_PRICE,
} from "./margin";
import { SigmaContracts, SigmaDeploymentFile, connectContracts, parseDeployment, readDeployment, verifyDeployment } from "./deployment";

/** A quote: fill price and fee of a trade now, as SigmaLens.quote computes them. */
export interface Quote {
  marketId: number;
  sizeDeltaD18: bigint;
  /** Oracle price the fill is priced from. */
  oraclePriceD18: bigint;
  /** Market skew before the trade. */
  skewD18: bigint;
  fillPriceD18: bigint;
  feeD18: bigint;
  /** The fee in token units as the Vault charges it (rounded up). */
  feeTokens: bigint;
  /** |size|·fill price, rounded up. */
  notionalD18: bigint;
  blockNumber: number;
  timestamp: bigint;
}

/** The ClearingHouse's global parameters relevant to integrators. */
export interface ProtocolParams extends AccountParams {
  minExecutionFee: bigint;
  minDelay: bigint;
  maxAge: bigint;
}

export interface ReadOptions {
  /** Block to read at (default: the latest block). Every read of one call uses the same block. */
  blockTag?: BlockTag;
}

export interface PreviewOptions extends ReadOptions {
  /**
   * Execution timestamp to preview at (default: the block's). Funding accrues up to it; prices, σ and breakers
   * are those of the block read.
   */
  timestamp?: bigint;
  /** Worst accepted fill price (default: no limit), or derive it from the current quote with `slippageBps`. */
  acceptablePriceD18?: bigint;
  slippageBps?: number;
  /** Preview a reduce-only order: clamped to the position, rejected if it would open or grow one. */
  reduceOnly?: boolean;
}

export interface OrderOptions {
  /** Tolerance around the current quote's fill price, in basis points (e.g. 50 = 0.5 %). */
  slippageBps?: number;
  /** Or an explicit worst fill price: a maximum for buys, a minimum for sells. */
  acceptablePriceD18?: bigint;
  /** Execution fee escrowed for the keeper, wei (default and minimum: ClearingHouse.minExecutionFee). */
  executionFee?: bigint;
}

/** A committed order: the transaction, the limits it carries, and a way to wait for its id. */
export interface CommittedOrder {
  tx: ContractTransactionResponse;
  marketId: number;
  sizeDeltaD18: bigint;
  acceptablePriceD18: bigint;
  executionFee: bigint;
  /** The quote the acceptable price was derived from (when `slippageBps` was used). */
  quote?: Quote;
  /** Waits for the commit to be mined and returns the order id. */
  wait(confirms?: number): Promise<{ orderId: bigint; receipt: ContractTransactionReceipt }>;
}

/** A revert reason decoded: the custom error's name and arguments. */
export interface DecodedError {
  errorName: string;
  args: unknown[];
  /** The raw ABI-encoded reason. */
  data: string;
}

/** What `executeOrder` did with an order, from its receipt. */
export interface OrderOutcome {
  orderId: bigint;
  filled: boolean;
  fillPriceD18?: bigint;
  sizeDeltaD18?: bigint;
  newSizeD18?: bigint;
  realizedPnlD18?: bigint;
  feeD18?: bigint;
  fundingIndexD18?: bigint;
  /** Why the order was cancelled (absent when filled). */
  cancelReason?: DecodedError;
}

export interface ClientOptions {
  /**
   * Check the file against the chain when connecting: "chainId" (default) compares chain ids; "full" also
   * checks code at every address and the contracts' wiring; false skips.
   */
  verify?: "chainId" | "full" | false;
}

/** Storage slot of ClearingHouse._accounts (declaration order: _positions = 0, _accounts = 1). */

/** Errors any step of an order can revert with, for decoding `OrderCancelled.reason`. */
const ERRORS = new Interface([
  ...ClearingHouse__factory.abi.filter((f) => f.type === "error"),
  ...Vault__factory.abi.filter((f) => f.type === "error"),
  "error Error(string)",
  "error Panic(uint256)",
  "error MarginMathInvalidFillPrice(int256 skewD18, int256 sizeDeltaD18)",
  "error SafeCastOverflowedUintToInt(uint256 value)",
  "error SafeCastOverflowedIntDowncast(uint8 bits, int256 value)",
  "error SafeCastOverflowedUintDowncast(uint8 bits, uint256 value)",
  "error SafeCastOverflowedIntToUint(int256 value)",
]);

/** Decodes an ABI-encoded revert reason with every error the protocol can raise. */
export function decodeError(data: string): DecodedError {
  try {
    const e = ERRORS.parseError(data);
    if (e) return { errorName: e.name, args: [...e.args], data };
  } catch {
    /* unknown selector */
  }
  return { errorName: data === "0x" ? "" : "unknown", args: [], data };
}

const RISK_FIELDS = [
  "priceD18",
  "sigmaD18",
  "mmrD18",
  "imrD18",
  "liqFeeD18",
  "sizeAddOnD18",
  "skewScaleD18",
  "takerFeeD18",
  "makerFeeD18",
  "maxFundingRateD18",
  "oiCapRatioD18",
  "breakers",
] as const;

function toRisk(r: Record<(typeof RISK_FIELDS)[number], bigint>): MarketRisk {
  return Object.fromEntries(RISK_FIELDS.map((k) => [k, BigInt(r[k])])) as unknown as MarketRisk;
}

function toState(s: {
  skewD18: bigint;
  netCostBasisD18: bigint;
  oiLongD18: bigint;
  oiShortD18: bigint;
  fundingIndexD18: bigint;
  lastFundingTime: bigint;
}): MarketState {
  return {
    skewD18: BigInt(s.skewD18),
    netCostBasisD18: BigInt(s.netCostBasisD18),
    oiLongD18: BigInt(s.oiLongD18),
    oiShortD18: BigInt(s.oiShortD18),
    fundingIndexD18: BigInt(s.fundingIndexD18),
    lastFundingTime: BigInt(s.lastFundingTime),
  };
}

/** Converts the ClearingHouse's AccountSummary struct to the SDK's plain object. */
export function toAccountSummary(s: {
  collateral: bigint;
  unrealizedPnlD18: bigint;
  equityD18: bigint;
  initialRequirementD18: bigint;
  maintenanceRequirementD18: bigint;
  freeCollateral: bigint;
  healthD18: bigint;
  liquidatable: boolean;
  status: bigint | number;
  marginCallDeadline: bigint;
}): AccountSummary {
  return {
    collateral: BigInt(s.collateral),
    unrealizedPnlD18: BigInt(s.unrealizedPnlD18),
    equityD18: BigInt(s.equityD18),
    initialRequirementD18: BigInt(s.initialRequirementD18),
    maintenanceRequirementD18: BigInt(s.maintenanceRequirementD18),
    freeCollateral: BigInt(s.freeCollateral),
    healthD18: BigInt(s.healthD18),
    liquidatable: Boolean(s.liquidatable),
    status: Number(s.status) as AccountStatus,
    marginCallDeadline: BigInt(s.marginCallDeadline),
  };
}

function bitmapMarkets(bitmap: bigint): number[] {
  const out: number[] = [];
  for (let m = 0; bitmap >> BigInt(m) !== 0n; m++) if ((bitmap >> BigInt(m)) & 1n) out.push(m);
  return out;
}

function isSigner(r: ContractRunner | null | undefined): r is Signer {
  return !!r && typeof (r as Signer).getAddress === "function" && typeof (r as Signer).signTypedData === "function";
}

export class SigmaClient {
  /** Collateral token scale (10^(18 − decimals)); immutable in the Vault. */
  readonly tokenScale: bigint;

  private constructor(
    readonly deployment: SigmaDeploymentFile,
    readonly contracts: SigmaContracts,
    readonly runner: ContractRunner,
  ) {
    this.tokenScale = 10n ** BigInt(18 - deployment.collateralDecimals);
  }

  /**
   * Connects to the deployment described by `file` (a path to deployments/<network>.json, or its parsed
   * content) with `runner`: a provider to read, a signer to also send transactions.
   */
  static async fromDeployment(
    file: string | SigmaDeploymentFile | object,
    runner: ContractRunner,
    opts: ClientOptions = {},
  ): Promise<SigmaClient> {
    const d = typeof file === "string" ? readDeployment(file) : parseDeployment(file);
    const client = new SigmaClient(d, connectContracts(d, runner), runner);
    const verify = opts.verify ?? "chainId";
    if (verify === "full") await verifyDeployment(d, client.provider);
    else if (verify === "chainId") {
      const net = await client.provider.getNetwork();
      if (net.chainId !== BigInt(d.chainId)) {
        throw new Error(`${d.network}: deployment file is for chain ${d.chainId}, the provider is on ${net.chainId}`);
      }
    }
    return client;
  }

  /** The same deployment through another runner (e.g. another signer). */
  connect(runner: ContractRunner): SigmaClient {
    return new SigmaClient(this.deployment, connectContracts(this.deployment, runner), runner);
  }

  get provider(): Provider {
    const p = this.runner.provider ?? (this.runner as unknown as Provider);
    if (!p || typeof (p as Provider).getBlock !== "function") throw new Error("SigmaClient: the runner has no provider");
    return p as Provider;
  }

  private get signer(): Signer {
    if (!isSigner(this.runner)) throw new Error("SigmaClient: sending needs a signer (connect one with client.connect(signer))");
    return this.runner;
  }

  /** Market id of a symbol of the deployment file ("ETH-PERP"). */
  marketId(symbol: string): number {
    const m = this.deployment.markets.find((x) => x.symbol === symbol);
    if (!m) throw new Error(`unknown market ${symbol} (known: ${this.deployment.markets.map((x) => x.symbol).join(", ")})`);
    return m.marketId;
  }

  // ============================================================================================ reads

  /** Number and timestamp of a block (latest by default): every multi-read pins itself to one. */
  async block(blockTag: BlockTag = "latest"): Promise<{ blockNumber: number; timestamp: bigint }> {
    const b = await this.provider.getBlock(blockTag);
    if (!b) throw new Error(`block ${blockTag} not found`);
    return { blockNumber: b.number, timestamp: BigInt(b.timestamp) };
  }

  /** The ClearingHouse's parameters that previews and orders depend on. */
  async params(opts: ReadOptions = {}): Promise<ProtocolParams> {
    const ch = this.contracts.clearingHouse;
    const o = { blockTag: opts.blockTag ?? "latest" };
    const [hardFloorD18, marginCallExpiry, minExecutionFee, minDelay, maxAge] = await Promise.all([
      ch.hardFloorD18(o),
      ch.marginCallExpiry(o),
      ch.minExecutionFee(o),
      ch.minDelay(o),
      ch.maxAge(o),
    ]);
    return {
      tokenScale: this.tokenScale,
      hardFloorD18,
      marginCallExpiry,
      minExecutionFee,
      minDelay,
      maxAge,
    };
  }

  /**
   * One market in one block: RiskManager.marketRisk (price, σ, ratios, fees, breakers), ClearingHouse.marketState
   * (skew, aggregates, funding index) and the funding index including what is pending at the block's time.
   */
  async snapshot(marketId: number, opts: ReadOptions = {}): Promise<MarketSnapshot> {
    const { blockNumber, timestamp } = await this.block(opts.blockTag);
    return this.snapshotAt(marketId, blockNumber, timestamp);
  }

  private async snapshotAt(marketId: number, blockNumber: number, timestamp: bigint): Promise<MarketSnapshot> {
    const o = { blockTag: blockNumber };
    const [risk, state] = await Promise.all([
      this.contracts.riskManager.marketRisk(marketId, false, o),
      this.contracts.clearingHouse.marketState(marketId, o),
    ]);
    return makeSnapshot(marketId, toRisk(risk), toState(state), timestamp);
  }

  /** The margin-call deadline stored for an account (0 if none), from `ClearingHouse.marginCallDeadline`. */
  async marginCallDeadline(account: string, opts: ReadOptions = {}): Promise<bigint> {
    return BigInt(await this.contracts.clearingHouse.marginCallDeadline(account, { blockTag: opts.blockTag ?? "latest" }));
  }

  /** The account's collateral, positions and margin-call deadline in one block (positions of `extraMarkets` too). */
  async accountState(account: string, opts: ReadOptions & { extraMarkets?: number[] } = {}): Promise<AccountState> {
    const blockTag = opts.blockTag ?? "latest";
    const ch = this.contracts.clearingHouse;
    const [collateral, bitmap, marginCallDeadline] = await Promise.all([
      this.contracts.vault.collateralOf(account, { blockTag }),
      ch.accountMarkets(account, { blockTag }),
      this.marginCallDeadline(account, { blockTag }),
    ]);
    const ids = [...new Set([...bitmapMarkets(bitmap), ...(opts.extraMarkets ?? [])])].sort((a, b) => a - b);
    const pos = await Promise.all(ids.map((m) => ch.position(account, m, { blockTag })));
    const positions = new Map<number, Position>();
    ids.forEach((m, i) => {
      if (pos[i].sizeD18 !== 0n) positions.set(m, { sizeD18: BigInt(pos[i].sizeD18), costBasisD18: BigInt(pos[i].costBasisD18) });
    });
    return { address: account, collateral, positions, marginCallDeadline };
  }

  /** ClearingHouse.accountSummary (read from the chain). */
  async accountSummary(account: string, opts: ReadOptions = {}): Promise<AccountSummary> {
    return toAccountSummary(await this.contracts.clearingHouse.accountSummary(account, { blockTag: opts.blockTag ?? "latest" }));
  }

  /** The account summary computed locally from chain state (equal to `accountSummary`), at an optional later time. */
  async computeAccountSummary(account: string, opts: ReadOptions & { timestamp?: bigint } = {}): Promise<AccountSummary> {
    const ctx = await this.context(account, [], opts);
    return computeSummary(ctx.account, ctx.markets, ctx.params, ctx.now);
  }

  /** Fill price and fee of a trade of `sizeDeltaD18` now, computed locally (equal to SigmaLens.quote). */
  async quote(marketId: number, sizeDeltaD18: bigint, opts: ReadOptions = {}): Promise<Quote> {
    const { blockNumber, timestamp } = await this.block(opts.blockTag);
    const snap = await this.snapshotAt(marketId, blockNumber, timestamp);
    return this.quoteFrom(snap, sizeDeltaD18, blockNumber);
  }

  private quoteFrom(snap: MarketSnapshot, sizeDeltaD18: bigint, blockNumber: number): Quote {
    const q = quoteMath(snap, sizeDeltaD18);
    return {
      marketId: snap.marketId,
      sizeDeltaD18,
      oraclePriceD18: snap.risk.priceD18,
      skewD18: snap.state.skewD18,
      fillPriceD18: q.fillPriceD18,
      feeD18: q.feeD18,
      feeTokens: ceilDiv(q.feeD18, this.tokenScale),
      notionalD18: notionalUpD18(sizeDeltaD18 < 0n ? -sizeDeltaD18 : sizeDeltaD18, q.fillPriceD18),
      blockNumber,
      timestamp: snap.timestamp,
    };
  }

  /** Everything the margin math needs about an account, read in one block. */
  private async context(account: string, extraMarkets: number[], opts: ReadOptions & { timestamp?: bigint }) {
    const { blockNumber, timestamp } = await this.block(opts.blockTag);
    const now = opts.timestamp ?? timestamp;
    if (now < timestamp) throw new Error(`timestamp ${now} is before the block read (${timestamp})`);
    const blockTag = blockNumber;
    const [acct, params, poolBalance] = await Promise.all([
      this.accountState(account, { blockTag, extraMarkets }),
      this.params({ blockTag }),
      this.contracts.vault.poolBalance({ blockTag }),
    ]);
    const ids = [...new Set([...acct.positions.keys(), ...extraMarkets])];
    const snaps = await Promise.all(ids.map((m) => this.snapshotAt(m, blockNumber, timestamp)));
    const markets = new Map(snaps.map((s) => [s.marketId, s]));
    return { account: acct, params, poolBalance, markets, now, blockNumber, timestamp };
  }

  /**
   * What an order of `sizeDeltaD18` on `marketId` would do to `account` if a keeper executed it at
   * `opts.timestamp` (default: now) at the current prices: fill price, fee, realized PnL, the account's
   * summary before and after, liquidation prices, and whether the ClearingHouse would accept it (else the
   * error it would cancel the order with).
   */
  async preview(
    account: string,
    marketId: number,
    sizeDeltaD18: bigint,
    opts: PreviewOptions = {},
  ): Promise<TradePreview & { blockNumber: number }> {
    const ctx = await this.context(account, [marketId], opts);
    let acceptable = opts.acceptablePriceD18;
    if (acceptable === undefined && opts.slippageBps !== undefined) {
      const q = quoteMath(ctx.markets.get(marketId)!, sizeDeltaD18);
      acceptable = acceptablePriceWithSlippage(q.fillPriceD18, sizeDeltaD18, opts.slippageBps);
    }
    const p = previewTrade({
      account: ctx.account,
      markets: ctx.markets,
      params: ctx.params,
      poolBalance: ctx.poolBalance,
      marketId,
      sizeDeltaD18,
      acceptablePriceD18: acceptable,
      now: ctx.now,
      reduceOnly: opts.reduceOnly,
    });
    return { ...p, blockNumber: ctx.blockNumber };
  }

  /** SigmaLens.liquidationPriceD18 computed locally: the price of `marketId` at which equity meets maintenance. */
  async liquidationPrice(account: string, marketId: number, opts: ReadOptions = {}): Promise<bigint> {
    const ctx = await this.context(account, [marketId], opts);
    const pos = ctx.account.positions.get(marketId);
    if (!pos) return 0n;
    const s = computeSummary(ctx.account, ctx.markets, ctx.params, ctx.now);
    return liquidationPriceD18(s, pos.sizeD18, ctx.markets.get(marketId)!.risk);
  }

  // ============================================================================================ orders

  /**
   * Commits a market order of `sizeDeltaD18` (positive buys) with the minimum execution fee (or more), and a
   * worst fill price given explicitly or derived from the current quote and `slippageBps`.
   */
  async commitOrder(marketId: number, sizeDeltaD18: bigint, opts: OrderOptions): Promise<CommittedOrder> {
    if (sizeDeltaD18 === 0n) throw new RangeError("sizeDeltaD18 must not be zero");
    if (sizeDeltaD18 >= 1n << 95n || sizeDeltaD18 < -(1n << 95n)) throw new RangeError("sizeDeltaD18 does not fit an int96");
    if (!this.deployment.markets.some((m) => m.marketId === marketId)) throw new RangeError(`unknown market ${marketId}`);
    if ((opts.slippageBps === undefined) === (opts.acceptablePriceD18 === undefined)) {
      throw new Error("commitOrder: give exactly one of slippageBps and acceptablePriceD18");
    }
    const ch = this.contracts.clearingHouse;
    const minFee = await ch.minExecutionFee();
    const executionFee = opts.executionFee ?? minFee;
    if (executionFee < minFee) throw new RangeError(`executionFee ${executionFee} is below the minimum ${minFee}`);
    let q: Quote | undefined;
    let acceptablePriceD18 = opts.acceptablePriceD18;
    if (acceptablePriceD18 === undefined) {
      q = await this.quote(marketId, sizeDeltaD18);
      acceptablePriceD18 = acceptablePriceWithSlippage(q.fillPriceD18, sizeDeltaD18, opts.slippageBps!);
    }
    if (acceptablePriceD18 < 0n || acceptablePriceD18 > MAX_ACCEPTABLE_PRICE) throw new RangeError("acceptablePriceD18 does not fit a uint96");
    const tx = await ch.commitOrder(marketId, sizeDeltaD18, acceptablePriceD18, { value: executionFee });
    return {
      tx,
      marketId,
      sizeDeltaD18,
      acceptablePriceD18,
      executionFee,
      quote: q,
      wait: async (confirms?: number) => {
        const receipt = await tx.wait(confirms);
        if (!receipt) throw new Error("commitOrder: transaction dropped");
        const orderId = this.orderIdFrom(receipt);
        return { orderId, receipt };
      },
    };
  }

  /** The id of the order committed in a receipt. */
  orderIdFrom(receipt: ContractTransactionReceipt): bigint {
    const ch = this.contracts.clearingHouse;
    for (const l of receipt.logs) {
      if (l.address.toLowerCase() !== this.deployment.contracts.clearingHouse.toLowerCase()) continue;
      const ev = ch.interface.parseLog(l);
      if (ev?.name === "OrderCommitted") return ev.args.orderId as bigint;
    }
    throw new Error(`no OrderCommitted event in ${receipt.hash}`);
  }

  /** Executes a due order (what a keeper does; anyone may). */
  async executeOrder(orderId: bigint): Promise<ContractTransactionResponse> {
    return this.contracts.clearingHouse.executeOrder(orderId);
  }

  /** Cancels an expired order (anyone), refunding the execution fee to the trader. */
  async cancelOrder(orderId: bigint): Promise<ContractTransactionResponse> {
    return this.contracts.clearingHouse.cancelOrder(orderId);
  }

  /** What happened to `orderId` in an `executeOrder` receipt: filled (with the fill) or cancelled (with why). */
  orderOutcome(receipt: ContractTransactionReceipt, orderId: bigint): OrderOutcome {
    const ch = this.contracts.clearingHouse;
    const out: OrderOutcome = { orderId, filled: false };
    let seen = false;
    for (const l of receipt.logs) {
      if (l.address.toLowerCase() !== this.deployment.contracts.clearingHouse.toLowerCase()) continue;
      const ev = ch.interface.parseLog(l);
      if (!ev) continue;
      if (ev.name === "PositionModified") {
        out.sizeDeltaD18 = ev.args.sizeDeltaD18;
        out.newSizeD18 = ev.args.newSizeD18;
        out.realizedPnlD18 = ev.args.realizedPnlD18;
        out.feeD18 = ev.args.feeD18;
        out.fundingIndexD18 = ev.args.fundingIndexD18;
      } else if (ev.name === "OrderExecuted" && ev.args.orderId === orderId) {
        out.filled = true;
        out.fillPriceD18 = ev.args.fillPriceD18;
        seen = true;
      } else if (ev.name === "OrderCancelled" && ev.args.orderId === orderId) {
        out.cancelReason = decodeError(ev.args.reason);
        seen = true;
      }
    }
    if (!seen) throw new Error(`order ${orderId} was neither executed nor cancelled in ${receipt.hash}`);
    return out;
  }

  // ============================================================================================ collateral

  /**
   * Deposits `amount` (token units) as collateral of `account` (default: the signer). Approves the Vault
   * first when the allowance is short (set `approve: false` to fail instead).
   */
  async deposit(amount: bigint, opts: { account?: string; approve?: boolean } = {}): Promise<ContractTransactionResponse> {
    const owner = await this.signer.getAddress();
    const vault = this.deployment.contracts.vault;
    const allowance = await this.contracts.collateral.allowance(owner, vault);
    if (allowance < amount) {
      if (opts.approve === false) throw new Error(`allowance ${allowance} < ${amount}: approve the Vault or use depositWithPermit`);
      const a = await this.contracts.collateral.approve(vault, amount);
      await a.wait();
    }
    return this.contracts.vault.deposit(opts.account ?? owner, amount);
  }

  /** The EIP-712 domain of the collateral token's permit, checked against its DOMAIN_SEPARATOR. */
  async permitDomain(): Promise<TypedDataDomain> {
    const token = this.contracts.collateral;
    const verifyingContract = this.deployment.contracts.collateral;
    const { chainId } = await this.provider.getNetwork();
    const candidates: TypedDataDomain[] = [];
    try {
      // ERC-5267 (OpenZeppelin ERC20Permit): the token says its own domain.
      const d = await token.eip712Domain();
      candidates.push({ name: d.name, version: d.version, chainId: d.chainId, verifyingContract: d.verifyingContract });
    } catch {
      /* not ERC-5267 (e.g. USDC): try name() with version() or "1"/"2" */
    }
    if (candidates.length === 0) {
      const name = await token.name();
      let versions = ["1", "2"];
      try {
        const v = await new Interface(["function version() view returns (string)"]).decodeFunctionResult(
          "version",
          await this.provider.call({ to: verifyingContract, data: "0x54fd4d50" }),
        );
        versions = [String(v[0]), ...versions];
      } catch {
        /* no version() */
      }
      for (const version of versions) candidates.push({ name, version, chainId, verifyingContract });
    }
    const separator = await token.DOMAIN_SEPARATOR();
    const d = candidates.find((c) => TypedDataEncoder.hashDomain(c) === separator);
    if (!d) throw new Error(`cannot reconstruct the permit domain of ${verifyingContract} (DOMAIN_SEPARATOR ${separator})`);
    return d;
  }

  /** Signs an ERC-2612 permit letting the Vault pull `amount` from the signer until `deadline`. */
  async signPermit(amount: bigint, deadline: bigint): Promise<{ v: number; r: string; s: string; deadline: bigint }> {
    const signer = this.signer;
    const owner = await signer.getAddress();
    const [domain, nonce] = await Promise.all([this.permitDomain(), this.contracts.collateral.nonces(owner)]);
    const types = {
      Permit: [
        { name: "owner", type: "address" },
        { name: "spender", type: "address" },
        { name: "value", type: "uint256" },
        { name: "nonce", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    };
    const sig = Signature.from(
      await signer.signTypedData(domain, types, { owner, spender: this.deployment.contracts.vault, value: amount, nonce, deadline }),
    );
    return { v: sig.v, r: sig.r, s: sig.s, deadline };
  }

  /**
   * Deposits with an ERC-2612 permit signed on the spot (no approve transaction). `deadline` defaults to one
   * hour after the latest block.
   */
  async depositWithPermit(amount: bigint, opts: { account?: string; deadline?: bigint } = {}): Promise<ContractTransactionResponse> {
    const owner = await this.signer.getAddress();
    const deadline = opts.deadline ?? (await this.block()).timestamp + 3600n;
    const p = await this.signPermit(amount, deadline);
    return this.contracts.vault.depositWithPermit(opts.account ?? owner, amount, deadline, p.v, p.r, p.s);
  }

  /** Withdraws `amount` (token units) of the signer's free collateral to `to` (default: the signer). */
  async withdraw(amount: bigint, to?: string): Promise<ContractTransactionResponse> {
    return this.contracts.vault.withdraw(amount, to ?? (await this.signer.getAddress()));
  }

  /** Collateral the account may withdraw now (token units). */
  async freeCollateral(account: string, opts: ReadOptions = {}): Promise<bigint> {
    return this.contracts.clearingHouse.freeCollateral(account, { blockTag: opts.blockTag ?? "latest" });
  }
}
