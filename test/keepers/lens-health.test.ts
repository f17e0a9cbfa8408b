// SigmaLens.healthBatch reads each market's snapshot once per batch and evaluates the accounts from their
// positions and collateral with the ClearingHouse's MarginMath. Here it must return exactly what
// ClearingHouse.accountSummary returns, account by account, through a sequence of states: funding pending,
// a price drop, margin calls flagged / expired / renewed, a σ breaker, and a stale price feed (where
// accountSummary reverts and the batch gives that account an all-zero summary).
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { sigmaFixture, trade, publishRound, setPrice, setVol, usdc, d18, ETH, BTC, Fixture } from "../fixture";

const STATUS = { Healthy: 0, MarginCallable: 1, MarginCalled: 2, Liquidatable: 3 } as const;
const FIELDS = [
  "collateral",
  "unrealizedPnlD18",
  "equityD18",
  "initialRequirementD18",
  "maintenanceRequirementD18",
  "freeCollateral",
  "healthD18",
  "liquidatable",
  "status",
  "marginCallDeadline",
] as const;
const ZERO = [0n, 0n, 0n, 0n, 0n, 0n, 0n, false, 0n, 0n];

type Row = (bigint | boolean)[];
const row = (s: any): Row => FIELDS.map((k) => (typeof s[k] === "boolean" ? s[k] : BigInt(s[k])));

interface World {
  f: Fixture;
  /** Named accounts, in a fixed order. */
  accounts: { name: string; signer: HardhatEthersSigner | null; address: string }[];
}

/** Nine accounts: positions at 2× to 29× on ETH, an ETH/BTC pair, a BTC short, deposit only, a closed
 * position, and an address the protocol has never seen. */
async function world(): Promise<World> {
  const f = await sigmaFixture();
  const [t0, t1, t2, t3, t4] = f.traders;
  const [o0, o1, o2] = f.others;
  for (const o of [o0, o1, o2]) {
    await f.token.mint(o.address, usdc("100000"));
    await f.token.connect(o).approve(await f.vault.getAddress(), ethers.MaxUint256);
  }
  const dep = async (s: HardhatEthersSigner, amount: string) => f.vault.connect(s).deposit(s.address, usdc(amount));
  await dep(t0, "10000");
  await dep(t1, "1000");
  await dep(t2, "700");
  await dep(t3, "3000");
  await dep(t4, "5000");
  await dep(o0, "500");
  await dep(o1, "2000");
  await dep(o2, "950");
  await trade(f, t0, ETH, d18(10));
  await trade(f, t1, ETH, d18(10));
  await trade(f, t2, ETH, d18(10));
  await trade(f, t3, ETH, -d18(10));
  await trade(f, t3, BTC, d18("0.5"));
  await trade(f, t4, BTC, -d18(1));
  await trade(f, o1, ETH, d18(5));
  await trade(f, o1, ETH, -d18(5)); // closed: the market's bit is cleared, the slot kept
  await trade(f, o2, ETH, d18(10));
  const unseen = ethers.Wallet.createRandom().address;
  const accounts = [
    { name: "eth-2x", signer: t0 },
    { name: "eth-20x", signer: t1 },
    { name: "eth-29x", signer: t2 },
    { name: "eth-short+btc-long", signer: t3 },
    { name: "btc-short", signer: t4 },
    { name: "deposit-only", signer: o0 },
    { name: "closed", signer: o1 },
    { name: "eth-21x", signer: o2 },
  ].map((a) => ({ ...a, address: a.signer.address }));
  return { f, accounts: [...accounts, { name: "unseen", signer: null, address: unseen }] };
}

/** Compares the lens with accountSummary for every account (at one block); returns each account's status,
 * or "zero" where accountSummary reverts. */
async function compare(w: World): Promise<string[]> {
  const blockTag = await ethers.provider.getBlockNumber();
  const addrs = w.accounts.map((a) => a.address);
  // In one batch, and in batches of one (a market snapshot shared or not must not change a figure).
  const batch = (await w.f.lens.healthBatch(addrs, { blockTag })).map(row);
  const singles = await Promise.all(addrs.map(async (a) => row((await w.f.lens.healthBatch([a], { blockTag }))[0])));
  const out: string[] = [];
  for (let i = 0; i < addrs.length; i++) {
    let want: Row | null = null;
    try {
      want = row(await w.f.clearingHouse.accountSummary(addrs[i], { blockTag }));
    } catch {
      want = null;
    }
    expect(batch[i], `${w.accounts[i].name} (batch)`).to.deep.equal(want ?? ZERO);
    expect(singles[i], `${w.accounts[i].name} (alone)`).to.deep.equal(want ?? ZERO);
    out.push(want === null ? "zero" : ["Healthy", "MarginCallable", "MarginCalled", "Liquidatable"][Number(want[8])]);
  }
  return out;
}

describe("SigmaLens.healthBatch equals ClearingHouse.accountSummary", function () {
  this.timeout(120_000);

  it("through funding, a price drop, margin calls, a σ breaker and a stale feed", async () => {
    const w = await loadFixture(world);
    const { f } = w;
    const name = (n: string) => w.accounts.find((a) => a.name === n)!;

    // 1. Just after the trades.
    expect(await compare(w)).to.deep.equal(["Healthy", "Healthy", "Healthy", "Healthy", "Healthy", "Healthy", "Healthy", "Healthy", "Healthy"]);

    // 2. An hour of funding pending on a skewed ETH market (fresh rounds, no accrual since the trades).
    await time.increase(3600);
    await publishRound(f, ETH);
    await publishRound(f, BTC);
    const ms = await f.clearingHouse.marketState(ETH);
    expect(ms.skewD18).to.equal(d18(30));
    const snaps = await f.lens.marketSnapshots();
    expect(snaps.length).to.equal(2);
    const pendingIndex = snaps[ETH].fundingIndexD18;
    expect(pendingIndex).to.not.equal(ms.fundingIndexD18);
    expect(await compare(w)).to.deep.equal(["Healthy", "Healthy", "Healthy", "Healthy", "Healthy", "Healthy", "Healthy", "Healthy", "Healthy"]);

    // 3. ETH 2,000 → 1,940: the thin longs fall below maintenance, the 29× one below the hard floor.
    await setPrice(f, ETH, "1940");
    const afterDrop = await compare(w);
    expect(afterDrop).to.deep.equal(["Healthy", "MarginCallable", "Liquidatable", "Healthy", "Healthy", "Healthy", "Healthy", "MarginCallable", "Healthy"]);

    // 4. Margin calls flagged: inside the grace window.
    await f.clearingHouse.connect(f.keeper).flagMarginCall(name("eth-20x").address);
    await f.clearingHouse.connect(f.keeper).flagMarginCall(name("eth-21x").address);
    expect(await compare(w)).to.deep.equal(["Healthy", "MarginCalled", "Liquidatable", "Healthy", "Healthy", "Healthy", "Healthy", "MarginCalled", "Healthy"]);

    // 5. Past the deadline (within the expiry): liquidatable, with the deadline reported.
    const grace = Number(await f.clearingHouse.marginCallGrace());
    await time.increase(grace + 1);
    await publishRound(f, ETH);
    await publishRound(f, BTC);
    expect(await compare(w)).to.deep.equal(["Healthy", "Liquidatable", "Liquidatable", "Healthy", "Healthy", "Healthy", "Healthy", "Liquidatable", "Healthy"]);

    // 6. Past the expiry: the margin calls lapse, the accounts are MarginCallable again.
    await time.increase(Number(await f.clearingHouse.marginCallExpiry()) + 1);
    await publishRound(f, ETH);
    await publishRound(f, BTC);
    expect(await compare(w)).to.deep.equal(["Healthy", "MarginCallable", "Liquidatable", "Healthy", "Healthy", "Healthy", "Healthy", "MarginCallable", "Healthy"]);

    // 7. σ above the breaker level: reduce-only, higher requirements.
    await setVol(f, ETH, "260");
    const ethRisk = (await f.lens.marketSnapshots())[ETH];
    expect(ethRisk.priced).to.equal(true);
    expect(ethRisk.risk.breakers & 8n).to.equal(8n);
    expect(await compare(w)).to.deep.equal(["Healthy", "Liquidatable", "Liquidatable", "Healthy", "Healthy", "Healthy", "Healthy", "Liquidatable", "Healthy"]);

    // 8. BTC's feed goes stale (ETH's stays fresh): accountSummary reverts for the BTC holders, the batch
    // gives them zeros and still evaluates everybody else.
    const maxAge = (await f.riskManager.marketParams(BTC)).priceMaxAge;
    await time.increase(Number(maxAge) + 1);
    await publishRound(f, ETH);
    await setVol(f, ETH, "260");
    const stale = await f.lens.marketSnapshots();
    expect(stale.map((s) => s.priced)).to.deep.equal([true, false]);
    expect(stale[BTC].risk.priceD18).to.equal(0n);
    expect(await compare(w)).to.deep.equal(["Healthy", "Liquidatable", "Liquidatable", "zero", "zero", "Healthy", "Healthy", "Liquidatable", "Healthy"]);
  });

  it("marketSnapshots returns RiskManager.marketRisk and the pending funding index of every market", async () => {
    const w = await loadFixture(world);
    const { f } = w;
    await time.increase(600);
    await publishRound(f, ETH);
    await publishRound(f, BTC);
    const blockTag = await ethers.provider.getBlockNumber();
    const snaps = await f.lens.marketSnapshots({ blockTag });
    for (const m of [ETH, BTC]) {
      const r = await f.riskManager.marketRisk(m, false, { blockTag });
      expect(snaps[m].marketId).to.equal(BigInt(m));
      expect(snaps[m].priced).to.equal(true);
      expect([...snaps[m].risk]).to.deep.equal([...r]);
    }
    // The ETH market is skewed 30 ETH long at $2,000: funding accrues between the last trade and now.
    const ms = await f.clearingHouse.marketState(ETH, { blockTag });
    expect(snaps[ETH].fundingIndexD18 > ms.fundingIndexD18).to.equal(true);
    // BTC: 0.5 long, 1 short.
    expect((await f.clearingHouse.marketState(BTC, { blockTag })).skewD18).to.equal(-d18("0.5"));
  });
});
