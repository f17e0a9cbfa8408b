import { ethers, network } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, ETH } from "../fixture";

describe("probe", () => {
  it("reverted tx mining", async () => {
    const f = await loadFixture(sigmaFixture);
    const b0 = await ethers.provider.getBlock("latest");
    await network.provider.send("evm_setNextBlockTimestamp", [b0!.timestamp + 10]);
    try {
      await (await f.clearingHouse.connect(f.keeper).executeOrder(99, { gasLimit: 5_000_000 })).wait();
    } catch (e: any) {
      console.log("err keys", Object.keys(e), e.data, e.code, e.shortMessage);
    }
    const b1 = await ethers.provider.getBlock("latest");
    console.log("blocks", b0!.number, b1!.number, b1!.timestamp - b0!.timestamp);
    try {
      await f.clearingHouse.connect(f.keeper).executeOrder(99);
    } catch (e: any) {
      console.log("err2", e.data, e.code);
    }
    const b2 = await ethers.provider.getBlock("latest");
    console.log("blocks", b2!.number);
  });
});
