// End to end: SigmaClient against a local deployment. The client's quotes equal SigmaLens.quote, its local
// account summaries equal ClearingHouse.accountSummary, and its trade previews predict, to the wei, what the
// keeper's execution does (fill price, fee, realized PnL, position, market state, the account's summary
// afterwards, or the exact error the order is cancelled with) for random trades on the shared fixture.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import fc from "fast-check";
import { parseUnits } from "ethers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { Fixture, sigmaFixture, sigma18Fixture, setPrice, usdc, d18, ETH, BTC } from "../fixture";
import { buildDeploymentFile, writeDeploymentFile } from "../../scripts/lib/deployment-file";
import { SigmaClient, AccountStatus, TradePreview } from "../../sdk";

const E2E_RUNS = 20;

async function clientFor(f: Fixture, runner: HardhatEthersSigner = f.admin): Promise<{ client: SigmaClient; file: string }> {
  const chainId = Number((await ethers.provider.getNetwork()).chainId);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sigma-sdk-"));
  const file = writeDeploymentFile(dir, await buildDeploymentFile("hardhat", chainId, f));
  return { client: await SigmaClient.fromDeployment(file, runner), file };
}

/** Addresses and numbers of decoded errors, comparable with the preview's. */
const normArgs = (args: readonly unknown[]) => args.map((a) => String(a).toLowerCase());

async function rejects(p: Promise<unknown>, re: RegExp) {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(String((err as Error | undefined)?.message), "expected a rejection").to.match(re);
}

async function feedAnswer(f: Fixture, m: number): Promise<bigint> {
  return (await f.priceFeeds[m].latestRoundData()).answer;
}

describe("SigmaClient (end to end on the fixture)", function () {
  it("reads the deployment file, and quotes equal SigmaLens.quote", async function () {
    const f = await loadFixture(sigmaFixture);
    const { client } = await clientFor(f);
    expect(client.marketId("BTC-PERP")).to.equal(BTC);
    expect(client.tokenScale).to.equal(10n ** 12n);
    for (const [m, size] of [
      [ETH, d18("3.5")],
      [ETH, -d18("120")],
      [BTC, d18("0.25")],
      [BTC, -1n],
    ] as const) {
      const q = await client.quote(m, size);
      const lens = await f.lens.quote(m, size);
      expect([q.fillPriceD18, q.feeD18]).to.deep.equal([lens.fillPriceD18, lens.feeD18]);
    }
  });

  it("deposits with an ERC-2612 permit (no approval) and withdraws free collateral", async function () {
    const f = await loadFixture(sigmaFixture);
    const fresh = f.others[0];
    await f.token.mint(fresh.address, usdc(5000));
    const { client: base } = await clientFor(f);
    const client = base.connect(fresh);
    expect(await f.token.allowance(fresh.address, await f.vault.getAddress())).to.equal(0n);
    await (await client.depositWithPermit(usdc(1200))).wait();
    expect(await f.vault.collateralOf(fresh.address)).to.equal(usdc(1200));
    expect(await f.token.nonces(fresh.address)).to.equal(1n);
    // Plain deposit approves on the way.
    await (await client.deposit(usdc(300))).wait();
    expect(await f.vault.collateralOf(fresh.address)).to.equal(usdc(1500));
    expect(await client.freeCollateral(fresh.address)).to.equal(usdc(1500));
    await (await client.withdraw(usdc(500))).wait();
    expect(await f.token.balanceOf(fresh.address)).to.equal(usdc(4000));
    const s = await client.accountSummary(fresh.address);
    expect(s.collateral).to.equal(usdc(1000));
    expect(s.status).to.equal(AccountStatus.Healthy);
  });

  it("commits an order at the minimum execution fee with a slippage limit around the quote", async function () {
    const f = await loadFixture(sigmaFixture);
    const { client: base } = await clientFor(f);
    const t = f.traders[0];
    const client = base.connect(t);
    await (await client.deposit(usdc(10000))).wait();
    const order = await client.commitOrder(ETH, d18("2"), { slippageBps: 50 });
    const { orderId } = await order.wait();
    const stored = await f.clearingHouse.order(orderId);
    expect(stored.account).to.equal(t.address);
    expect(stored.executionFee).to.equal(await f.clearingHouse.minExecutionFee());
    expect(stored.acceptablePriceD18).to.equal((order.quote!.fillPriceD18 * 10050n + 9999n) / 10000n);
    await rejects(client.commitOrder(ETH, d18("1"), {}), /exactly one/);
    await rejects(client.commitOrder(ETH, d18("1"), { slippageBps: 10, executionFee: 1n }), /below the minimum/);
  });

  it("reads a margin call's deadline, which the summary hides once the account is healthy again", async function () {
    const f = await loadFixture(sigmaFixture);
    const { client } = await clientFor(f);
    const t = f.traders[1];
    await (await client.connect(t).deposit(usdc(2000))).wait();
    const order = await client.connect(t).commitOrder(ETH, d18("20"), { slippageBps: 100 });
    const { orderId } = await order.wait();
    await time.increase(5);
    await f.priceFeeds[ETH].updateAnswer(await f.priceFeeds[ETH].latestAnswer()); // a round after the commit
    await f.clearingHouse.connect(f.keeper).executeOrder(orderId);
    // Drop the price until the account is margin-callable, flag it, then recover.
    await setPrice(f, ETH, "1935");
    expect((await client.accountSummary(t.address)).status).to.equal(AccountStatus.MarginCallable);
    await f.clearingHouse.connect(f.keeper).flagMarginCall(t.address);
    const visible = (await client.accountSummary(t.address)).marginCallDeadline;
    expect(visible).to.be.greaterThan(0n);
    expect(await client.marginCallDeadline(t.address)).to.equal(visible);
    await setPrice(f, ETH, "2000");
    const healthy = await client.accountSummary(t.address);
    expect(healthy.status).to.equal(AccountStatus.Healthy);
    expect(healthy.marginCallDeadline).to.equal(0n);
    expect(await client.marginCallDeadline(t.address)).to.equal(visible);
    expect(await client.computeAccountSummary(t.address)).to.deep.equal(healthy);
    expect(await client.liquidationPrice(t.address, ETH)).to.equal(await f.lens.liquidationPriceD18(t.address, ETH));
  });

  describe("previews equal the keeper's execution to the wei (fast-check)", function () {
    interface Action {
      trader: number;
      market: number;
      kind: "random" | "close" | "flip" | "half";
      long: boolean;
      /** Notional as a multiple of the trader's deposit, in tenths (0.1× … 50×: beyond ~33× initial margin fails). */
      levTenths: number;
      jitter: bigint;
      wait: number;
      moves: [number, number]; // bps, applied after the commit (the price the keeper fills at)
      limit: { t: "none" } | { t: "bps"; bps: number };
      extra: number;
      pause: boolean;
      flag: boolean;
    }
    // Mostly small moves, sometimes a shock that takes leveraged accounts under maintenance or the hard floor.
    const move = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: -300, max: 300 }) }, { weight: 1, arbitrary: fc.integer({ min: -1500, max: 1500 }) });
    const action: fc.Arbitrary<Action> = fc.record({
      trader: fc.integer({ min: 0, max: 2 }),
      market: fc.constantFrom(ETH, BTC),
      kind: fc.constantFrom("random", "random", "random", "random", "close", "flip", "half"),
      long: fc.boolean(),
      levTenths: fc.integer({ min: 1, max: 500 }),
      jitter: fc.bigInt({ min: 0n, max: 10n ** 13n }),
      wait: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 4000 })),
      moves: fc.tuple(move, move),
      limit: fc.oneof(fc.constant({ t: "none" as const }), fc.record({ t: fc.constant("bps" as const), bps: fc.integer({ min: 0, max: 300 }) })),
      extra: fc.integer({ min: 0, max: 30 }),
      pause: fc.integer({ min: 0, max: 9 }).map((x) => x < 2),
      flag: fc.boolean(),
    });
    const scenario = fc.record({
      collateral: fc.tuple(fc.integer({ min: 100, max: 60_000 }), fc.integer({ min: 100, max: 60_000 }), fc.integer({ min: 100, max: 60_000 })),
      actions: fc.array(action, { minLength: 3, maxLength: 7 }),
    });

    const stats = { filled: 0, cancelled: new Map<string, number>(), statusBefore: new Map<string, number>() };

    after(function () {
      // Shown with the test output: the random trades must exercise fills and several cancellation reasons.
      console.log(
        `      e2e: ${stats.filled} fills, cancellations ${JSON.stringify(Object.fromEntries(stats.cancelled))}, ` +
          `account status at execution ${JSON.stringify(Object.fromEntries(stats.statusBefore))}`,
      );
    });

    async function step(f: Fixture, client: SigmaClient, a: Action, deposits: readonly number[]) {
      const trader = f.traders[a.trader];
      const ch = f.clearingHouse;
      if (a.wait) await time.increase(a.wait);
      // Keep every feed fresh so that breakers come only from the guardian's pause.
      for (const m of [ETH, BTC]) await f.priceFeeds[m].updateAnswer(await feedAnswer(f, m));

      const pos = (await ch.position(trader.address, a.market)).sizeD18;
      const answer = await feedAnswer(f, a.market);
      const notionalUsd = (BigInt(deposits[a.trader]) * BigInt(a.levTenths)) / 10n + 1n;
      let delta = (notionalUsd * 10n ** 26n) / answer + a.jitter;
      if (!a.long) delta = -delta;
      if (pos !== 0n && a.kind === "close") delta = -pos;
      if (pos !== 0n && a.kind === "flip") delta = -2n * pos + (pos > 0n ? -a.jitter : a.jitter);
      if (pos !== 0n && a.kind === "half") delta = -pos / 2n || -pos;
      if (delta === 0n) delta = 1n;

      if (a.pause) await f.riskManager.connect(f.admin).setOpeningPaused(a.market, true);
      const order = await client
        .connect(trader)
        .commitOrder(a.market, delta, a.limit.t === "bps" ? { slippageBps: a.limit.bps } : { acceptablePriceD18: delta > 0n ? 2n ** 96n - 1n : 0n });
      const { orderId, receipt } = await order.wait();
      const committedAt = BigInt((await ethers.provider.getBlock(receipt.blockNumber))!.timestamp);

      // The price moves between commit and execution.
      for (const m of [ETH, BTC]) {
        const bps = BigInt(a.moves[m]);
        // Always a round after the commit (orders execute only at such a round), moved or not.
        if (bps !== 0n || m === a.market) {
          await f.priceFeeds[m].updateAnswer(((await feedAnswer(f, m)) * (10_000n + bps)) / 10_000n);
        }
      }
      if (a.flag) {
        try {
          await ch.connect(f.keeper).flagMarginCall.staticCall(trader.address);
          await ch.connect(f.keeper).flagMarginCall(trader.address);
        } catch {
          /* not margin-callable */
        }
      }

      // At the latest block: local summaries, quotes and liquidation prices equal the contracts'.
      const latest = await client.block();
      expect(await client.computeAccountSummary(trader.address), "local summary").to.deep.equal(await client.accountSummary(trader.address));
      const q = await client.quote(a.market, delta);
      const lq = await f.lens.quote(a.market, delta).catch(() => null);
      if (lq) expect([q.fillPriceD18, q.feeD18], "quote").to.deep.equal([lq.fillPriceD18, lq.feeD18]);
      for (const m of [ETH, BTC]) {
        expect(await client.liquidationPrice(trader.address, m), "liquidation price").to.equal(await f.lens.liquidationPriceD18(trader.address, m));
      }

      const minDelay = BigInt(await ch.minDelay());
      const base = committedAt + minDelay > latest.timestamp + 1n ? committedAt + minDelay : latest.timestamp + 1n;
      const at = base + BigInt(a.extra);
      const p: TradePreview = await client.preview(trader.address, a.market, delta, {
        timestamp: at,
        acceptablePriceD18: order.acceptablePriceD18,
      });

      const st = AccountStatus[p.before.status];
      stats.statusBefore.set(st, (stats.statusBefore.get(st) ?? 0) + 1);

      await time.setNextBlockTimestamp(at);
      const rc = (await (await ch.connect(f.keeper).executeOrder(orderId)).wait())!;
      expect(BigInt((await ethers.provider.getBlock(rc.blockNumber))!.timestamp)).to.equal(at);
      const out = client.orderOutcome(rc, orderId);
      const onChain = await client.accountSummary(trader.address, { blockTag: rc.blockNumber });

      const why = `${a.kind} ${delta} on market ${a.market}: predicted ${p.rejection?.errorName ?? "fill"}, got ${
        out.cancelReason?.errorName ?? "fill"
      }`;
      expect(out.filled, why).to.equal(p.accepted);
      if (out.filled) {
        stats.filled++;
        expect(out.fillPriceD18, "fill price").to.equal(p.fillPriceD18);
        expect(out.feeD18, "fee").to.equal(p.feeD18);
        expect(out.realizedPnlD18, "realized").to.equal(p.realizedPnlD18);
        expect(out.fundingIndexD18, "funding index").to.equal(p.fundingIndexD18);
        expect(out.newSizeD18, "new size").to.equal(p.positionAfter!.sizeD18);
        const chainPos = await ch.position(trader.address, a.market, { blockTag: rc.blockNumber });
        expect([chainPos.sizeD18, chainPos.costBasisD18], "position").to.deep.equal([p.positionAfter!.sizeD18, p.positionAfter!.costBasisD18]);
        const ms = await ch.marketState(a.market, { blockTag: rc.blockNumber });
        expect(
          [ms.skewD18, ms.netCostBasisD18, ms.oiLongD18, ms.oiShortD18, ms.fundingIndexD18, ms.lastFundingTime],
          "market state",
        ).to.deep.equal(Object.values(p.marketStateAfter!));
        expect(onChain, "summary after").to.deep.equal(p.after);
        expect(await f.lens.liquidationPriceD18(trader.address, a.market, { blockTag: rc.blockNumber }), "liquidation price after").to.equal(
          p.liquidationPriceAfterD18,
        );
      } else {
        const name = out.cancelReason!.errorName;
        stats.cancelled.set(name, (stats.cancelled.get(name) ?? 0) + 1);
        expect(name, why).to.equal(p.rejection!.errorName);
        expect(normArgs(out.cancelReason!.args), "error arguments").to.deep.equal(normArgs(p.rejection!.args));
        expect(onChain, "summary unchanged").to.deep.equal(p.before);
      }
      if (a.pause) await f.riskManager.connect(f.admin).setOpeningPaused(a.market, false);
    }

    const cases = [
      { name: "6-decimal collateral (USDC)", fixture: sigmaFixture, decimals: 6, runs: E2E_RUNS },
      { name: "18-decimal collateral", fixture: sigma18Fixture, decimals: 18, runs: 5 },
    ];
    for (const c of cases) {
      it(`random trades, price moves, margin calls and pauses: ${c.name}`, async function () {
        const filledBefore = stats.filled;
        await fc.assert(
          fc.asyncProperty(scenario, async (sc) => {
            const f = await loadFixture(c.fixture);
            const { client } = await clientFor(f);
            for (let i = 0; i < 3; i++) {
              const tc = client.connect(f.traders[i]);
              const amount = parseUnits(String(sc.collateral[i]), c.decimals);
              await (await (i === 0 ? tc.depositWithPermit(amount) : tc.deposit(amount))).wait();
            }
            for (const a of sc.actions) await step(f, client, a, sc.collateral);
          }),
          { numRuns: c.runs },
        );
        expect(stats.filled).to.be.greaterThan(filledBefore);
      });
    }
  });
});
