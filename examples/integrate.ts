/**
 * An integration with Sigma through its SDK, end to end on a local chain:
 *
 *   npx hardhat run examples/integrate.ts
 *
 * The first part stands in for "a deployment exists": it deploys Sigma locally (scripts/lib/deploy.ts), seeds
 * the liquidity pool, gives the trader some mock USDC and writes a deployment file to a temp folder. From
 * then on the integration uses only the SDK (`../sdk`): read the deployment file, look at a market, deposit
 * with an ERC-2612 permit (no approve transaction), quote, preview the trade's effect on the account,
 * commit the order, let a keeper execute it, and compare the account before, as predicted, and after.
 * Moving the local chain's clock stands in for waiting the order's minimum delay.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import hre from "hardhat";
import { formatUnits, parseUnits } from "ethers";
import { deploySigma } from "../scripts/lib/deploy";
import { buildDeploymentFile, writeDeploymentFile } from "../scripts/lib/deployment-file";
import { AccountStatus, AccountSummary, SigmaClient, WAD, breakerNames, fundingRatePerDayD18 } from "../sdk";

const usd = (x: bigint, d = 2) => Number(formatUnits(x, 18)).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const pct = (x: bigint) => `${(Number(formatUnits(x, 18)) * 100).toFixed(3)} %`;
let collateralDecimals = 6;
const tokens = (x: bigint) => formatUnits(x, collateralDecimals);

function printSummary(label: string, s: AccountSummary) {
  const health = s.healthD18 === 2n ** 256n - 1n ? "∞" : (Number(formatUnits(s.healthD18, 18))).toFixed(3);
  console.log(
    `  ${label.padEnd(10)} collateral ${tokens(s.collateral).padStart(10)} USDC | equity $${usd(s.equityD18).padStart(10)} | ` +
      `IM $${usd(s.initialRequirementD18).padStart(8)} | MM $${usd(s.maintenanceRequirementD18).padStart(8)} | ` +
      `free ${tokens(s.freeCollateral).padStart(10)} USDC | health ${health} | ${AccountStatus[s.status]}`,
  );
}

/** Local chain only: the next block (the keeper's execution) gets this timestamp. */
async function advanceTo(timestamp: bigint) {
  await hre.network.provider.send("evm_setNextBlockTimestamp", [Number(timestamp)]);
}

async function main() {
  // ------------------------------------------------------------------ a local deployment (not the SDK)
  const [deployer, keeperSigner, lp, trader] = await hre.ethers.getSigners();
  const d = await deploySigma(deployer);
  await (await d.token.mint(lp.address, parseUnits("1000000", 6))).wait();
  await (await d.token.connect(lp).approve(await d.pool.getAddress(), hre.ethers.MaxUint256)).wait();
  await (await d.pool.connect(lp).deposit(parseUnits("1000000", 6), lp.address)).wait();
  await (await d.token.mint(trader.address, parseUnits("25000", 6))).wait();
  const chainId = Number((await hre.ethers.provider.getNetwork()).chainId);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sigma-example-"));
  const file = writeDeploymentFile(dir, await buildDeploymentFile(hre.network.name, chainId, d));
  console.log(`Sigma deployed locally; deployment file ${file}\n`);

  // ------------------------------------------------------------------ from here on: the SDK only
  const client = await SigmaClient.fromDeployment(file, trader, { verify: "full" });
  const keeper = client.connect(keeperSigner);
  collateralDecimals = client.deployment.collateralDecimals;
  const me = trader.address;
  const eth = client.marketId("ETH-PERP");

  const snap = await client.snapshot(eth);
  const r = snap.risk;
  console.log(`ETH-PERP  price $${usd(r.priceD18)}  σ ${pct(r.sigmaD18)}  MMR ${pct(r.mmrD18)}  IMR ${pct(r.imrD18)}  ` +
    `max leverage ${(Number(WAD) / Number(r.imrD18)).toFixed(1)}×  funding/day ${pct(fundingRatePerDayD18(snap))}  ` +
    `breakers ${breakerNames(r.breakers).join(",") || "none"}`);

  // Deposit with a permit: one transaction, no approve.
  await (await client.depositWithPermit(parseUnits("10000", collateralDecimals))).wait();
  console.log(`deposited 10,000 USDC with an ERC-2612 permit\n`);

  // Quote and preview a 25-ETH long (≈ $50,000, 5× on this account).
  const size = parseUnits("25", 18);
  const q = await client.quote(eth, size);
  console.log(`quote: buy 25 ETH at $${usd(q.fillPriceD18, 4)} (oracle $${usd(q.oraclePriceD18)}), fee $${usd(q.feeD18, 4)} = ${tokens(q.feeTokens)} USDC`);

  const params = await client.params();
  const { timestamp: nowTs } = await client.block();
  // When our keeper will execute: after the order's minimum delay (counted from the commit a moment from now).
  const executeAt = nowTs + params.minDelay + 30n;
  const preview = await client.preview(me, eth, size, { timestamp: executeAt, slippageBps: 50 });
  console.log(`preview at t+${executeAt - nowTs}s: ${preview.accepted ? "accepted" : `refused (${preview.rejection!.errorName})`}, ` +
    `fill $${usd(preview.fillPriceD18!, 4)}, liquidation price after $${usd(preview.liquidationPriceAfterD18!)}`);
  printSummary("before", preview.before);
  printSummary("predicted", preview.after!);

  // Commit with 0.5 % slippage around the quote and the minimum execution fee.
  const order = await client.commitOrder(eth, size, { slippageBps: 50 });
  const { orderId } = await order.wait();
  console.log(`\ncommitted order #${orderId}: acceptable price $${usd(order.acceptablePriceD18, 4)}, execution fee ${formatUnits(order.executionFee, 18)} ETH`);

  // A keeper executes it once minDelay has passed (here: at the previewed timestamp).
  const committedAt = (await client.block(order.tx.blockNumber ?? "latest")).timestamp;
  if (committedAt + params.minDelay > executeAt) throw new Error("the commit came later than planned: preview again");
  await advanceTo(executeAt);
  const rc = (await (await keeper.executeOrder(orderId)).wait())!;
  const outcome = client.orderOutcome(rc, orderId);
  console.log(`keeper executed order #${orderId}: ${outcome.filled ? `filled at $${usd(outcome.fillPriceD18!, 4)}` : `cancelled (${outcome.cancelReason!.errorName})`}`);

  const after = await client.accountSummary(me, { blockTag: rc.blockNumber });
  printSummary("after", after);
  const same = (Object.keys(after) as (keyof AccountSummary)[]).every((k) => after[k] === preview.after![k]);
  console.log(`  the chain's summary ${same ? "equals the SDK's prediction to the wei" : "DIFFERS from the prediction"}`);
  console.log(`  liquidation price $${usd(await client.liquidationPrice(me, eth))}`);

  // Withdraw part of what the margin check leaves free.
  const free = await client.freeCollateral(me);
  await (await client.withdraw(free / 2n)).wait();
  printSummary("withdrawn", await client.accountSummary(me));
  if (!same) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
