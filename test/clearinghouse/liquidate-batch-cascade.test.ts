import { expect } from "chai";
import { ethers, network } from "hardhat";
import { time } from "@nomicfoundation/hardhat-network-helpers";
import { parseUnits, Wallet } from "ethers";
import { deploySigma, PRICE_FEED_DECIMALS, SigmaDeployment } from "../../scripts/lib/deploy";
import { DEFAULT_MARKETS, PARAM, SIGMA_SOURCE } from "../../scripts/lib/params";
import { interleaveBySkew } from "../interleave";
import { testTimeout } from "../fixture";

const d18 = (x: string) => parseUnits(x, 18);
const usdc = (x: string) => parseUnits(x, 6);

/** The keeper benchmark's cascade (bench/keeper.ts) scaled down: production markets (σ from the feed),
 * high-leverage ETH longs (13 ETH on 1,000 USDC) offset by low-leverage shorts, one BTC long, then ETH
 * 2,000 → 1,940 makes every long liquidatable at once. */
async function cascade(nLong: number, nShort: number) {
  const [admin, keeper] = await ethers.getSigners();
  const markets = DEFAULT_MARKETS.map((m) => ({ ...m, params: { ...m.params, sigmaSource: SIGMA_SOURCE.FEED } }));
  const d: SigmaDeployment = await deploySigma(admin, { markets });
  await d.token.mint(admin.address, usdc("1000000000"));
  await d.token.approve(await d.pool.getAddress(), ethers.MaxUint256);
  await d.token.approve(await d.vault.getAddress(), ethers.MaxUint256);
  await d.pool.deposit(usdc("200000000"), admin.address);
  await d.riskManager.setMarketParam(0, PARAM.LiqLimit, d18("1"));
  const ch = d.clearingHouse;
  const fee = await ch.minExecutionFee();
  const LONG = d18("13");
  const shortSize = (LONG * BigInt(nLong)) / BigInt(nShort);
  type Spec = { w: Wallet; market: number; size: bigint; collateral: bigint };
  const specs: Spec[] = [];
  const mk = () => Wallet.createRandom().connect(ethers.provider) as unknown as Wallet;
  specs.push({ w: mk(), market: 1, size: d18("0.45"), collateral: usdc("1000") });
  for (let i = 0; i < nLong; i++) specs.push({ w: mk(), market: 0, size: LONG, collateral: usdc("1000") });
  for (let i = 0; i < nShort; i++) specs.push({ w: mk(), market: 0, size: -shortSize, collateral: usdc("2000") });
  const seq = interleaveBySkew(specs[0], specs.slice(1));
  for (const sp of specs) {
    await network.provider.send("hardhat_setBalance", [sp.w.address, "0xde0b6b3a7640000"]);
    await d.vault.deposit(sp.w.address, sp.collateral);
  }
  const CHUNK = 15;
  for (let s = 0; s < seq.length; s += CHUNK) {
    const part = seq.slice(s, s + CHUNK);
    const ids: bigint[] = [];
    for (const sp of part) {
      const rc = await (await ch.connect(sp.w).commitOrder(sp.market, sp.size, sp.size > 0n ? 2n ** 95n : 0n, { value: fee })).wait();
      const ev = rc!.logs.map((l) => { try { return ch.interface.parseLog(l); } catch { return null; } }).find((e) => e?.name === "OrderCommitted");
      ids.push(ev!.args.orderId as bigint);
    }
    await time.increase(Number(await ch.minDelay()) + 1);
    for (const f of d.priceFeeds) await f.updateAnswer(await f.latestAnswer());
    for (const id of ids) await ch.connect(keeper).executeOrder(id);
  }
  for (const x of specs) expect((await ch.position(x.w.address, x.market)).sizeD18).to.equal(x.size);
  return { d, ch, keeper, admin, target: specs[0].w.address, longs: specs.slice(1).filter((x) => x.size > 0n).map((x) => x.w.address), shorts: specs.filter((x) => x.size < 0n).map((x) => x.w.address), all: specs.map((x) => x.w.address) };
}

const LIQUIDATABLE = 3n;

/** Σ ledgers of the vault: pool, insurance fund, protocol fees and every account's collateral. */
async function ledgerSum(d: SigmaDeployment, accounts: string[]) {
  let s = (await d.vault.poolBalance()) + (await d.vault.insuranceFund()) + (await d.vault.protocolFees());
  for (const a of accounts) s += await d.vault.collateralOf(a);
  return s;
}

async function liquidatableOf(ch: SigmaDeployment["clearingHouse"], accounts: string[]) {
  const out: string[] = [];
  for (const a of accounts) if ((await ch.accountSummary(a)).status === LIQUIDATABLE) out.push(a);
  return out;
}

/** Storage of ClearingHouse._markets[m] (slot 2 of the ClearingHouse) and RiskManager._hot[m] (slot 2 after
 * AccessControl's _roles and _markets): puts the stored timestamps ahead of the block, i.e. serves calls block
 * N's state with block N−1's timestamp, as anvil does under load (its eth_call at "latest" can see the state of
 * a block being mined with the previous block's environment). */
async function storedTimesAhead(d: SigmaDeployment, m: bigint, ahead: bigint) {
  const coder = ethers.AbiCoder.defaultAbiCoder();
  const chAddr = await d.clearingHouse.getAddress();
  const msBase = BigInt(ethers.keccak256(coder.encode(["uint256", "uint256"], [m, 2n])));
  // fundingIndexD18 (int96) | lastFundingTime (uint32) << 96 | longBasisD18 (int128) << 128
  const msSlot = ethers.toBeHex(msBase + 2n, 32);
  const ms = await d.clearingHouse.marketState(m);
  const v = BigInt(await ethers.provider.getStorage(chAddr, msSlot));
  const layout = BigInt.asUintN(96, ms.fundingIndexD18) | (ms.lastFundingTime << 96n) | (BigInt.asUintN(128, ms.longBasisD18) << 128n);
  expect(v).to.equal(layout); // layout check
  const mask32 = ((1n << 32n) - 1n) << 96n; // lastFundingTime
  await network.provider.send("hardhat_setStorageAt", [chAddr, msSlot, ethers.toBeHex((v & ~mask32) | (ahead << 96n), 32)]);
  const rmAddr = await d.riskManager.getAddress();
  const hotSlot = ethers.toBeHex(BigInt(ethers.keccak256(coder.encode(["uint256", "uint256"], [m, 2n]))) + 1n, 32);
  const h = BigInt(await ethers.provider.getStorage(rmAddr, hotSlot));
  const [sigma] = await d.riskManager.ratios(m);
  expect(h & ((1n << 64n) - 1n)).to.equal(sigma); // layout check: σ in the low 64 bits
  const mask40 = ((1n << 40n) - 1n) << 192n; // sigmaUpdatedAt
  await network.provider.send("hardhat_setStorageAt", [rmAddr, hotSlot, ethers.toBeHex((h & ~mask40) | (ahead << 192n), 32)]);
}

describe("ClearingHouse liquidateBatch cascade (production markets)", function () {
  this.timeout(testTimeout(600_000));

  async function afterRounds(nLong: number, nShort: number) {
    const c = await cascade(nLong, nShort);
    // The benchmark's first round: the BTC target is liquidated alone.
    await c.d.priceFeeds[1].updateAnswer(parseUnits("58000", PRICE_FEED_DECIMALS));
    await c.ch.connect(c.keeper).liquidate(c.target);
    // The cascade round: every high-leverage long is below the hard floor at once.
    await c.d.priceFeeds[0].updateAnswer(parseUnits("1940", PRICE_FEED_DECIMALS));
    const liq = await liquidatableOf(c.ch, c.all);
    expect(liq).to.deep.equal(c.longs);
    return c;
  }

  it("50-account batches liquidate every account of a cascade (bad debt included), duplicates count once, the vault stays solvent", async () => {
    const { d, ch, keeper, longs, all } = await afterRounds(150, 300);
    const token = d.token;
    const vaultAddr = await d.vault.getAddress();
    const everyone = [...all, keeper.address];
    // Several batches simulated against the same block (the keeper's 8 in flight) all succeed in full.
    for (let i = 0; i < longs.length; i += 50) {
      const [n] = await ch.connect(keeper).liquidateBatch.staticCall(longs.slice(i, i + 50));
      expect(n).to.equal(50n);
    }
    // In sequence, with an account twice in the first batch and the last batch reversed.
    const batches = [[longs[0], ...longs.slice(0, 49)], longs.slice(49, 100), longs.slice(100, 150).reverse()];
    for (const b of batches) {
      const expected = new Set(await liquidatableOf(ch, b)).size;
      expect(expected).to.equal(new Set(b).size);
      const [n] = await ch.connect(keeper).liquidateBatch.staticCall(b);
      expect(n).to.equal(BigInt(expected));
      await expect(ch.connect(keeper).liquidateBatch(b)).to.not.be.reverted;
      expect(await token.balanceOf(vaultAddr)).to.equal(await ledgerSum(d, everyone));
    }
    expect(await liquidatableOf(ch, all)).to.deep.equal([]);
    for (const m of [0n, 1n]) {
      const ms = await ch.marketState(m);
      let long = 0n;
      let short = 0n;
      let skew = 0n;
      for (const a of all) {
        const s = (await ch.position(a, m)).sizeD18;
        skew += s;
        if (s > 0n) long += s;
        else short -= s;
      }
      expect([ms.oiLongD18, ms.oiShortD18, ms.skewD18]).to.deep.equal([long, short, skew]);
    }
  });

  it("a node serving a block's state with the previous block's timestamp (anvil under load) does not make liquidateBatch, liquidate or healthBatch panic", async () => {
    const { d, ch, keeper, longs, all } = await afterRounds(40, 80);
    const everyone = [...all, keeper.address];
    // Liquidations landing in block N set lastFundingTime (and a poke sigmaUpdatedAt) to N's timestamp.
    await ch.connect(keeper).liquidateBatch(longs.slice(0, 10));
    const now = BigInt((await ethers.provider.getBlock("latest"))!.timestamp);
    const ahead = now + 600n;
    for (const m of [0n, 1n]) await storedTimesAhead(d, m, ahead);
    const rest = longs.slice(10);
    const before = await ch.marketState(0n);
    // Was Panic(0x11) at ClearingHouse._pendingIndex (block.timestamp − lastFundingTime) via _loadView.
    const [n] = await ch.connect(keeper).liquidateBatch.staticCall(rest);
    expect(n).to.equal(BigInt(rest.length));
    await ch.connect(keeper).liquidate.staticCall(rest[0]);
    const h = await d.lens.healthBatch(rest);
    expect(h.every((x) => x.status === LIQUIDATABLE)).to.equal(true);
    expect(await d.riskManager.pokeNeeded(0n)).to.be.a("boolean");
    // The transaction itself, with the block still behind the stored times: no funding accrues and the
    // stored time does not move back.
    await time.setNextBlockTimestamp(now + 1n);
    await expect(ch.connect(keeper).liquidateBatch(rest)).to.not.be.reverted;
    const after = await ch.marketState(0n);
    expect(after.fundingIndexD18).to.equal(before.fundingIndexD18);
    expect(after.lastFundingTime).to.equal(ahead);
    expect(await liquidatableOf(ch, all)).to.deep.equal([]);
    expect(await d.token.balanceOf(await d.vault.getAddress())).to.equal(await ledgerSum(d, everyone));
  });
});
