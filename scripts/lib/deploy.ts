import type { Signer } from "ethers";
import { encodeBytes32String, parseUnits, id } from "ethers";
import {
  ClearingHouse__factory,
  LiquidationMath__factory,
  ClearingHouseParams__factory,
  SigmaLens__factory,
  SigmaAutomation__factory,
  LiquidityPool__factory,
  MockERC20__factory,
  MockV3Aggregator__factory,
  RiskManager__factory,
  Vault__factory,
} from "../../typechain-types";
import type {
  ClearingHouse,
  LiquidityPool,
  MockERC20,
  MockV3Aggregator,
  RiskManager,
  SigmaLens,
  SigmaAutomation,
  Vault,
} from "../../typechain-types";
import { DEFAULT_MARKETS, MarketSpec, MarketParams } from "./params";

export const ROLES = {
  PARAM_SETTER: id("sigma.role.PARAM_SETTER"),
  GUARDIAN: id("sigma.role.GUARDIAN"),
};

/** Feeds of one market. Locally they are Chainlink MockV3Aggregators. */
export interface MarketFeeds {
  symbol: string;
  marketId: number;
  priceFeed: string;
  volFeed: string;
}

export interface DeployOptions {
  /** Collateral token decimals for the local mock token (USDC: 6). */
  collateralDecimals?: number;
  markets?: MarketSpec[];
  /** Existing collateral token; a MockERC20 is deployed when absent. */
  collateral?: string;
  /** Existing feeds per market symbol (real Chainlink addresses); mocks are deployed when absent. */
  feeds?: Record<string, { priceFeed: string; volFeed: string }>;
  /** Deploy a mock L2 sequencer-uptime feed (answer 0 = up) and configure it with this grace period. */
  sequencerGracePeriod?: number;
  sequencerFeed?: string;
  /** Who gets the admin, param-setter and guardian roles (default: deployer). */
  admin?: string;
}

export interface SigmaDeployment {
  token: MockERC20;
  riskManager: RiskManager;
  vault: Vault;
  clearingHouse: ClearingHouse;
  pool: LiquidityPool;
  lens: SigmaLens;
  automation: SigmaAutomation;
  markets: MarketFeeds[];
  priceFeeds: MockV3Aggregator[];
  volFeeds: MockV3Aggregator[];
  sequencerFeed?: MockV3Aggregator;
  deploymentBlock: number;
}

/** Price feed decimals of Chainlink USD feeds, and volatility feed decimals used by the local mocks. */
export const PRICE_FEED_DECIMALS = 8;
export const VOL_FEED_DECIMALS = 2;

/** Deploys Sigma: RiskManager, Vault, ClearingHouse, LiquidityPool, wired together, with markets listed. */
export async function deploySigma(deployer: Signer, opts: DeployOptions = {}): Promise<SigmaDeployment> {
  const admin = opts.admin ?? (await deployer.getAddress());
  const provider = deployer.provider!;
  const deploymentBlock = await provider.getBlockNumber();
  const specs = opts.markets ?? DEFAULT_MARKETS;

  const token = opts.collateral
    ? MockERC20__factory.connect(opts.collateral, deployer)
    : await new MockERC20__factory(deployer).deploy("USD Coin (Sigma mock)", "USDC", opts.collateralDecimals ?? 6);
  await token.waitForDeployment();

  // The L2 sequencer-uptime feed is fixed at construction (a property of the chain, not a risk parameter).
  let sequencerFeed: MockV3Aggregator | undefined;
  let sequencerAddr = opts.sequencerFeed ?? "0x0000000000000000000000000000000000000000";
  const grace = opts.sequencerGracePeriod ?? 3600;
  if (!opts.sequencerFeed && opts.sequencerGracePeriod !== undefined) {
    sequencerFeed = await new MockV3Aggregator__factory(deployer).deploy(0, 0);
    await sequencerFeed.waitForDeployment();
    // Up since long before the deployment, as on a live L2.
    const now = (await provider.getBlock("latest"))!.timestamp;
    await (await sequencerFeed.updateRoundData(1, 0, now - grace - 1, now - grace - 1)).wait();
    sequencerAddr = await sequencerFeed.getAddress();
  }
  const riskManager = await new RiskManager__factory(deployer).deploy(
    await deployer.getAddress(),
    sequencerAddr,
    opts.sequencerFeed || opts.sequencerGracePeriod !== undefined ? grace : 0,
  );
  await riskManager.waitForDeployment();
  const vault = await new Vault__factory(deployer).deploy(await token.getAddress(), await deployer.getAddress());
  await vault.waitForDeployment();
  const liquidationMath = await new LiquidationMath__factory(deployer).deploy();
  await liquidationMath.waitForDeployment();
  const chParams = await new ClearingHouseParams__factory(deployer).deploy();
  await chParams.waitForDeployment();
  const clearingHouse = await new ClearingHouse__factory(
    {
      "contracts/clearinghouse/LiquidationMath.sol:LiquidationMath": await liquidationMath.getAddress(),
      "contracts/clearinghouse/ClearingHouseParams.sol:ClearingHouseParams": await chParams.getAddress(),
    },
    deployer,
  ).deploy(await vault.getAddress(), await riskManager.getAddress());
  await clearingHouse.waitForDeployment();
  const pool = await new LiquidityPool__factory(deployer).deploy(
    await vault.getAddress(),
    await clearingHouse.getAddress(),
    await deployer.getAddress(),
    "Sigma LP",
    "sLP",
  );
  await pool.waitForDeployment();
  await (await vault.wire(await clearingHouse.getAddress(), await pool.getAddress())).wait();
  const lens = await new SigmaLens__factory(deployer).deploy(await clearingHouse.getAddress());
  await lens.waitForDeployment();
  const automation = await new SigmaAutomation__factory(deployer).deploy(await clearingHouse.getAddress(), admin);
  await automation.waitForDeployment();

  const markets: MarketFeeds[] = [];
  const priceFeeds: MockV3Aggregator[] = [];
  const volFeeds: MockV3Aggregator[] = [];
  for (const spec of specs) {
    let priceFeed: string;
    let volFeed: string;
    const given = opts.feeds?.[spec.symbol];
    if (given) {
      priceFeed = given.priceFeed;
      volFeed = given.volFeed;
    } else {
      const pf = await new MockV3Aggregator__factory(deployer).deploy(
        PRICE_FEED_DECIMALS,
        parseUnits(spec.price, PRICE_FEED_DECIMALS),
      );
      const vf = await new MockV3Aggregator__factory(deployer).deploy(
        VOL_FEED_DECIMALS,
        parseUnits(spec.volPercent, VOL_FEED_DECIMALS),
      );
      await pf.waitForDeployment();
      await vf.waitForDeployment();
      priceFeeds.push(pf);
      volFeeds.push(vf);
      priceFeed = await pf.getAddress();
      volFeed = await vf.getAddress();
    }
    const marketId = markets.length;
    await (
      await riskManager.addMarket(encodeBytes32String(spec.symbol), priceFeed, volFeed, toStruct(spec.params))
    ).wait();
    markets.push({ symbol: spec.symbol, marketId, priceFeed, volFeed });
  }

  for (const c of [riskManager]) {
    await (await c.grantRole(ROLES.PARAM_SETTER, admin)).wait();
    await (await c.grantRole(ROLES.GUARDIAN, admin)).wait();
  }
  if (admin !== (await deployer.getAddress())) {
    const adminRole = await riskManager.DEFAULT_ADMIN_ROLE();
    for (const c of [riskManager, vault, pool]) {
      await (await c.grantRole(adminRole, admin)).wait();
    }
  }

  return {
    token,
    riskManager,
    vault,
    clearingHouse,
    pool,
    lens,
    automation,
    markets,
    priceFeeds,
    volFeeds,
    sequencerFeed,
    deploymentBlock,
  };
}

export function toStruct(p: MarketParams) {
  return { ...p };
}
