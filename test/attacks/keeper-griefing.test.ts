// Keeper griefing with a hostile ETH receiver (GMX v1 / Synthetix audit class: "a trader contract that
// reverts on refund blocks order cancellation", "return-data bombs make keepers run out of gas"). Sigma pushes
// ETH with a 30,000 gas cap and credits it (claimEth) when the receiver reverts; the push's return data cannot
// cost the caller more than what 30,000 gas can produce.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, chEvents } from "../fixture";
import { commitOnly, heartbeat } from "./helpers";
import type { MockRevertBomb, MockEthRejectingActor } from "../../typechain-types";

describe("attack: keeper griefing with a reverting callback or huge revert data", () => {
  it("a receiver that reverts with 100 KB of data or burns all gas blocks neither execution nor cancellation; its ETH becomes claimable", async () => {
    const f = await loadFixture(sigmaFixture);
    const ch = f.clearingHouse;
    const fee = await ch.minExecutionFee();
    const chAddr = await ch.getAddress();
    const bomb = (await (await ethers.getContractFactory("MockRevertBomb")).deploy(chAddr, 100_000)) as unknown as MockRevertBomb;
    const burner = (await (await ethers.getContractFactory("MockEthRejectingActor")).deploy(chAddr, 2)) as unknown as MockEthRejectingActor;

    // Baseline: gas of a cancellation refunding an EOA.
    const [alice] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(10_000));
    const idA = await commitOnly(f, alice, ETH, d18(1));
    await time.increase(Number(await ch.maxAge()) + 1);
    const base = (await (await ch.connect(f.keeper).cancelOrder(idA)).wait())!.gasUsed;

    // As traders: expired orders of the bomb (100 KB revert) and the gas burner are cancelled by anyone.
    await bomb.commit(ETH, d18(1), 2n ** 95n, { value: fee });
    const idBomb = (await ch.nextOrderId()) - 1n;
    await burner.commit(ETH, d18(1), 2n ** 95n, { value: fee });
    const idBurn = (await ch.nextOrderId()) - 1n;
    await time.increase(Number(await ch.maxAge()) + 1);
    const rcB = await (await ch.connect(f.keeper).cancelOrder(idBomb, { gasLimit: 1_000_000 })).wait();
    expect(chEvents(f, rcB).map((e) => e.name)).to.include.members(["OrderCancelled", "EthCredited"]);
    // The callee can produce at most what 30,000 gas of memory buys (≈100 KB); copying it costs the caller ≈40k.
    expect(rcB!.gasUsed - base, "the return bomb costs the canceller a bounded amount").to.be.lt(150_000n);
    const rcG = await (await ch.connect(f.keeper).cancelOrder(idBurn, { gasLimit: 1_000_000 })).wait();
    expect(chEvents(f, rcG).map((e) => e.name)).to.include.members(["OrderCancelled", "EthCredited"]);
    expect(rcG!.gasUsed - base).to.be.lt(150_000n);
    expect(await ch.claimableEth(await bomb.getAddress())).to.equal(fee);
    expect(await ch.claimableEth(await burner.getAddress())).to.equal(fee);

    // As keepers: executing an order with a hostile fee receiver still fills it.
    const idX = await commitOnly(f, alice, ETH, d18(2));
    await time.increase(5);
    await heartbeat(f, ETH);
    const rcX = await (await bomb.execute(idX, { gasLimit: 2_000_000 })).wait();
    expect(chEvents(f, rcX).map((e) => e.name)).to.include.members(["OrderExecuted", "EthCredited"]);
    expect((await ch.position(alice.address, ETH)).sizeD18).to.equal(d18(2));
    expect(await ch.claimableEth(await bomb.getAddress())).to.equal(2n * fee);

    // The hostile contracts can still get their ETH once they accept it.
    const bal = await ethers.provider.getBalance(await bomb.getAddress());
    await bomb.claim();
    expect(await ethers.provider.getBalance(await bomb.getAddress())).to.equal(bal + 2n * fee);
    expect(await ch.claimableEth(await bomb.getAddress())).to.equal(0n);
    await burner.setMode(0);
    await burner.claim();
    expect(await ch.claimableEth(await burner.getAddress())).to.equal(0n);
    expect(await ethers.provider.getBalance(chAddr), "no ETH left behind").to.equal(0n);
  });
});
