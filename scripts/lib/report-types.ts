// The run report's data model: what reports/run.json holds and what the terminal and HTML reports render.
// Amounts are USD (the collateral token's units as a number), ratios and σ are fractions (0.5 = 50%).

export const REPORT_SCHEMA = "sigma.run/1";

/** One market at the end of one simulated hour. */
export interface MarketHour {
  /** Last oracle price of the hour (the close). */
  price: number;
  /** Lowest and highest oracle rounds published during the hour. */
  low: number;
  high: number;
  /** σ in use (RiskManager.ratios) and what each source gives (sigmaSources). */
  sigma: number;
  feedSigma: number;
  estimatorSigma: number;
  /** Maintenance and initial ratios before the size add-on (RiskManager.ratios). */
  mmr: number;
  imr: number;
  maxLeverage: number;
  /** Circuit-breaker flags (non-zero: reduce-only). */
  breakers: number;
  skew: number;
  oiLong: number;
  oiShort: number;
}

/** A configuration's state at the end of one simulated hour, with the hour's events. */
export interface HourRecord {
  hour: number;
  /** The hour's open time in the price source's clock (Unix seconds). */
  time: number;
  phase?: string;
  markets: Record<string, MarketHour>;
  /** Events during the hour. */
  marginCalls: number;
  liquidations: number;
  accountsLiquidated: number;
  closedNotional: number;
  liquidationFees: number;
  badDebt: number;
  badDebtFromInsurance: number;
  badDebtSocialized: number;
  ordersExecuted: number;
  ordersCancelled: number;
  priceJumps: number;
  topUps: number;
  reduces: number;
  pokes: number;
  rateLimitWaits: number;
  /** State at the end of the hour. */
  badDebtCumulative: number;
  insuranceFund: number;
  /** LiquidityPool.totalAssets(): the pool's NAV (deposits − traders' unrealized PnL). */
  poolNav: number;
  poolBalance: number;
  protocolFees: number;
  tradersUnrealizedPnl: number;
  openAccounts: number;
  marginCalledAccounts: number;
  /** Accounts still liquidatable after the keeper step (the most seen after any step of the hour). */
  liquidatableAfterKeeper: number;
}

export interface TraderRow {
  id: string;
  address: string;
  market: string;
  side: "long" | "short";
  tier: string;
  behaviour: string;
  /** Dip buyers: the drawdown that triggers their entry. */
  dipAt?: number;
  entryHour?: number;
  entryLeverage?: number;
  entryMaxLeverage?: number;
  entryFailed?: string;
  deposited: number;
  finalCollateral: number;
  finalEquity: number;
  finalSize: number;
  pnl: number;
  status: string;
  marginCalls: number;
  liquidations: number;
  badDebt: number;
  topUps: number;
  reduces: number;
}

export interface MarketSummary {
  sigmaMin: number;
  sigmaMax: number;
  sigmaAvg: number;
  mmrAvg: number;
  imrAvg: number;
  imrMin: number;
  imrMax: number;
  maxLeverageMin: number;
  maxLeverageMax: number;
  reduceOnlyHours: number;
}

export interface ConfigSummary {
  markets: Record<string, MarketSummary>;
  marginCalls: number;
  liquidations: number;
  tradersLiquidated: number;
  tradersWithBadDebt: number;
  badDebt: number;
  badDebtFromInsurance: number;
  badDebtSocialized: number;
  insuranceStart: number;
  insuranceEnd: number;
  insuranceMin: number;
  poolNavStart: number;
  poolNavEnd: number;
  poolNavMin: number;
  lpReturnPct: number;
  tradersPnl: number;
  ordersExecuted: number;
  ordersCancelled: number;
  /** Entry orders that were cancelled or never committed, by reason. */
  entryFailures: Record<string, number>;
  topUps: number;
  reduces: number;
  rateLimitWaits: number;
  maxLiquidatableAfterKeeper: number;
  keeperErrors: string[];
}

export interface Invariants {
  vaultTokenBalance: number;
  sumCollateral: number;
  poolBalance: number;
  insuranceFund: number;
  protocolFees: number;
  /** vault balance − (Σ collateral + pool + insurance + fees), exact, in token units. */
  slackUnits: string;
  /** vault token balance ≥ Σ collateral + pool balance + insurance fund + protocol fees */
  solvent: boolean;
  /** Accounts liquidatable after the final keeper step. */
  liquidatableAfterKeeper: number;
  /** Each market's skew equals the sum of the traders' positions. */
  skewMatchesPositions: boolean;
  holds: boolean;
}

export interface ConfigurationReport {
  id: string;
  label: string;
  description: string;
  /** σ settings per market: source and bounds (a static configuration has sigmaMin = sigmaMax). */
  marketParams: Record<string, { sigmaSource: string; sigmaMin: number; sigmaMax: number }>;
  hourly: HourRecord[];
  summary: ConfigSummary;
  traders: TraderRow[];
  invariants: Invariants;
  elapsedMs: number;
}

export interface ScenarioInfo {
  seed: string;
  source: string;
  hours: number;
  traders: number;
  tradersByMarket: Record<string, number>;
  /** How the traders chose their leverage (population mode). */
  leverage?: string;
  lpDeposit: number;
  insuranceSeed: number;
  /** Risk parameters overridden for every market of both configurations (--param), as given; absent: none. */
  paramOverrides?: string;
  markets: { symbol: string; source: string; startPrice: number; endPrice: number; minPrice: number; maxPrice: number }[];
  phases: { name: string; from: number; to: number }[];
  /** How rounds are published: intra-hour slots and the deviation threshold. */
  rounds: { slotsSec: number[]; deviation: number };
  keeper: string;
  /** How the static configuration was calibrated. */
  staticCalibration: string;
}

export interface RunReport {
  schema: typeof REPORT_SCHEMA;
  generatedAt: string;
  scenario: ScenarioInfo;
  configurations: ConfigurationReport[];
}
