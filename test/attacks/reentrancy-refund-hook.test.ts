// GMX v1 (July 2025): during order execution GMX refunded ETH to the attacker's contract, whose receive()
// re-entered and opened positions while global state was half-updated. Sigma: every ClearingHouse entry point
// that moves value is nonReentrant (commit/modify/flag/clear/accrue move none and are deliberately unguarded), ETH is pushed last (after all state is written) with a 30k gas cap, claimEth zeroes the
// credit before sending, and the Vault has its own guard and follows checks-effects-interactions for token
// transfers. The attacker contract records what each re-entry did instead of reverting.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, deployFixture, usdc, d18, ETH, chEvents, Fixture } from "../fixture";
import { commitOnly, tryTrade, ledgers, errorName, heartbeat } from "./helpers";
import type { MockReentrantTrader } from "../../typechain-types";

async function attacker(f: Fixture): Promise<MockReentrantTrader> {
  const c = (await (await ethers.getContractFactory("MockReentrantTrader")).deploy(await f.clearingHouse.getAddress())) as unknown as MockReentrantTrader;
  await f.token.mint(await c.getAddress(), usdc(10_000));
  await c.approveAndDeposit(usdc(10_000));
  return c;
}

function reentries(c: MockReentrantTrader, rc: any) {
  return rc.logs
    .filter((l: any) => l.address === c.target)
    .map((l: any) => c.interface.parseLog(l))
    .filter((e: any) => e?.name === "Reentered");
}

describe("attack: re-entrancy through an ETH refund or token hook during order execution (GMX v1 2025)", () => {
  it("a refund hook cannot re-enter executeOrder / cancelOrder / liquidate / claimEth, and a commit from a payout callback only sees settled state", async () => {
    const f = await loadFixture(sigmaFixture);
    const ch = f.clearingHouse;
    const c = await attacker(f);
    const fee = await ch.minExecutionFee();
    const guardSel = ch.interface.getError("ReentrancyGuardReentrantCall")!.selector;
    const accounts = [await c.getAddress(), ...f.traders.map((t) => t.address), f.keeper.address];

    // 1) Refund on cancel re-enters the guarded, value-moving entry points: all refused, the other order
    // untouched. (commit/modify/flag/clear/accrue are deliberately unguarded: they move no value, so a
    // callback only sees settled state — exercised with full gas in part 3.)
    const idA = (await c.commit.staticCall(ETH, d18(5), 2n ** 95n, { value: fee })) as bigint;
    await c.commit(ETH, d18(5), 2n ** 95n, { value: fee });
    const idB = idA + 1n;
    await c.commit(ETH, d18(5), 2n ** 95n, { value: fee });
    await time.increase(Number(await ch.maxAge()) + 1);
    const calls = [
      ch.interface.encodeFunctionData("executeOrder", [idB]),
      ch.interface.encodeFunctionData("cancelOrder", [idB]),
      ch.interface.encodeFunctionData("liquidate", [f.traders[0].address]),
      ch.interface.encodeFunctionData("claimEth"),
    ];
    await c.arm(await ch.getAddress(), calls[0]);
    const before = await ledgers(f, accounts);
    const rc = await (await ch.connect(f.keeper).cancelOrder(idA)).wait();
    const r = reentries(c, rc);
    expect(r.length, "the refund reached the hook").to.equal(1);
    expect(r[0].args.ok, "executeOrder re-entry refused").to.equal(false);
    expect([guardSel, "0x00000000"]).to.include(r[0].args.selector);
    expect((await ch.order(idB)).account, "the other order is untouched").to.equal(await c.getAddress());
    expect(await ledgers(f, accounts)).to.equal(before);

    // Same for cancelOrder, liquidate and claimEth armed one by one on fresh expired orders.
    for (const data of calls.slice(1)) {
      await c.commit(ETH, d18(1), 2n ** 95n, { value: fee });
      const id = (await ch.nextOrderId()) - 1n;
      await time.increase(Number(await ch.maxAge()) + 1);
      await c.arm(await ch.getAddress(), data);
      const rc2 = await (await ch.connect(f.keeper).cancelOrder(id)).wait();
      const e = reentries(c, rc2);
      expect(e.length).to.equal(1);
      expect(e[0].args.ok, `re-entry ${data.slice(0, 10)} refused`).to.equal(false);
      expect([guardSel, "0x00000000"]).to.include(e[0].args.selector);
    }
    expect((await ch.order(idB)).account, "still untouched").to.equal(await c.getAddress());

    // 2) As keeper: the execution fee push re-enters executeOrder of another due order: refused, the fill is
    // complete, and the second order still executes normally afterwards.
    const [alice, bob] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(10_000));
    await f.vault.connect(bob).deposit(bob.address, usdc(10_000));
    const o1 = await commitOnly(f, alice, ETH, d18(3));
    const o2 = await commitOnly(f, bob, ETH, d18(3));
    await time.increase(5);
    await heartbeat(f, ETH);
    await c.arm(await ch.getAddress(), ch.interface.encodeFunctionData("executeOrder", [o2]));
    const rc3 = await (await c.execute(o1)).wait();
    const e3 = reentries(c, rc3);
    expect(e3.length).to.equal(1);
    expect(e3[0].args.ok).to.equal(false);
    expect((await ch.position(alice.address, ETH)).sizeD18).to.equal(d18(3));
    expect((await ch.position(bob.address, ETH)).sizeD18, "bob's order not executed from inside the hook").to.equal(0n);
    expect(await ch.connect(f.keeper).executeOrder.staticCall(o2)).to.equal(true);

    // 3) claimEth forwards all gas: re-entering claimEth (double claim) is refused and the ETH is paid once;
    // an unguarded commit from the callback sees settled state and keeps the ETH escrow exact.
    await c.setRevertOnReceive(true);
    const o3 = await commitOnly(f, alice, ETH, d18(1));
    await time.increase(5);
    await heartbeat(f, ETH);
    await c.execute(o3); // push fails → credited
    const credit = await ch.claimableEth(await c.getAddress());
    expect(credit).to.equal(fee);
    await c.setRevertOnReceive(false);
    await c.arm(await ch.getAddress(), ch.interface.encodeFunctionData("claimEth"));
    const bal0 = await ethers.provider.getBalance(await c.getAddress());
    const rc4 = await (await c.claim()).wait();
    const e4 = reentries(c, rc4);
    expect(e4[0].args.ok, "double claim refused").to.equal(false);
    expect(await ethers.provider.getBalance(await c.getAddress())).to.equal(bal0 + credit);
    expect(await ch.claimableEth(await c.getAddress())).to.equal(0n);

    await c.setRevertOnReceive(true);
    const o4 = await commitOnly(f, alice, ETH, d18(1));
    await time.increase(5);
    await heartbeat(f, ETH);
    await c.execute(o4);
    await c.setRevertOnReceive(false);
    await c.armWithValue(await ch.getAddress(), ch.interface.encodeFunctionData("commitOrder", [ETH, d18(1), 2n ** 95n]), fee);
    const next = await ch.nextOrderId();
    const rc5 = await (await c.claim()).wait();
    expect(reentries(c, rc5)[0].args.ok, "a commit from the payout callback is harmless").to.equal(true);
    expect((await ch.order(next)).executionFee).to.equal(fee);
    expect(await ch.claimableEth(await c.getAddress())).to.equal(0n);
    // Escrow stays exact: the ClearingHouse holds exactly the live orders' fees plus claimable credits.
    let escrow = 0n;
    for (let id = 0n; id < (await ch.nextOrderId()); id++) escrow += (await ch.order(id)).executionFee;
    expect(await ethers.provider.getBalance(await ch.getAddress())).to.equal(escrow);
  });

  it("a collateral-token hook that executes a pending order during a withdrawal sees the collateral already gone, and cannot re-enter the Vault", async () => {
    const tok = await (await ethers.getContractFactory("MockReentrantERC20")).deploy();
    const f = await deployFixture({ collateral: await tok.getAddress() });
    const [alice] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(1_000));
    // An order that needs most of the collateral as initial margin.
    const id = await commitOnly(f, alice, ETH, d18(14));
    await time.increase(5);
    await heartbeat(f, ETH);
    // Withdraw 900 and, from inside the token transfer, execute the order: it must not open on collateral
    // that is leaving.
    await tok.setHook(await f.clearingHouse.getAddress(), f.clearingHouse.interface.encodeFunctionData("executeOrder", [id]));
    const rc = await (await f.vault.connect(alice).withdraw(usdc(900), alice.address)).wait();
    const ev = chEvents(f, rc);
    const cancel = ev.find((e) => e.name === "OrderCancelled");
    expect(cancel, "the order ran inside the hook and was cancelled").to.not.equal(undefined);
    expect(errorName(f, cancel!.args.reason)).to.equal("ClearingHouseInsufficientMargin");
    expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(0n);
    expect(await f.vault.collateralOf(alice.address)).to.equal(usdc(100));
    expect(await tok.balanceOf(await f.vault.getAddress())).to.equal(
      (await f.vault.collateralOf(alice.address)) + (await f.vault.poolBalance()) + (await f.vault.insuranceFund()) + (await f.vault.protocolFees()),
    );

    // Re-entering the Vault's withdraw from the token hook reverts the whole withdrawal.
    await tok.setHook(await f.vault.getAddress(), f.vault.interface.encodeFunctionData("withdraw", [usdc(50), alice.address]));
    await expect(f.vault.connect(alice).withdraw(usdc(50), alice.address)).to.be.revertedWithCustomError(f.vault, "ReentrancyGuardReentrantCall");
    expect(await f.vault.collateralOf(alice.address)).to.equal(usdc(100));
    void tryTrade;
  });
});
