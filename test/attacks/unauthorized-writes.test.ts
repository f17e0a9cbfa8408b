// KiloEx (April 2025): a missing access check let an attacker write oracle prices and drain $7M. Sigma:
// no function takes a price or σ from its caller (pokeVolatility reads Chainlink only), and every other
// state-changing function is either a user action on the caller's own account or role-gated. This test walks
// every contract's ABI so that a new privileged function cannot be added without a check.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import type { BaseContract, FunctionFragment, ParamType } from "ethers";
import { sigmaFixture } from "../fixture";
import { ROLES } from "../../scripts/lib/deploy";
import { PARAM } from "../../scripts/lib/params";

/** Functions anyone may call: user actions on their own account, permissionless keeper jobs that take no
 * numbers, or standard token functions. Anything else must revert for a random caller. */
const PERMISSIONLESS: Record<string, string[]> = {
  ClearingHouse: [
    "commitOrder", "commitConditionalOrder", "executeOrder", "cancelOrder", "liquidate", "liquidateBatch", "flagMarginCall",
    "clearMarginCall", "autoDeleverage", "accrueFunding", "claimEth", "multicall",
  ],
  Vault: ["deposit", "depositWithPermit", "withdraw", "depositInsurance", "renounceRole"],
  RiskManager: ["pokeVolatility", "renounceRole"],
  LiquidityPool: ["deposit", "mint", "withdraw", "redeem", "transfer", "transferFrom", "approve", "renounceRole"],
  SigmaAutomation: ["track", "performUpkeep"],
};
/** Owner-only user actions: a random caller is refused with this error. */
const OWNER_ONLY: Record<string, string[]> = { ClearingHouse: ["modifyOrder"] };
const ACCESS_ERRORS = new Set([
  "AccessControlUnauthorizedAccount",
  "AccessControlBadConfirmation",
  "VaultUnauthorized",
  "ClearingHouseOnlySelf",
  "OwnableUnauthorizedAccount",
  "ClearingHouseNotOrderOwner",
]);

function dummy(t: ParamType, who: string): unknown {
  if (t.baseType === "array") return t.arrayLength && t.arrayLength > 0 ? Array(t.arrayLength).fill(dummy(t.arrayChildren!, who)) : [];
  if (t.baseType === "tuple") return t.components!.map((c) => dummy(c, who));
  if (t.type === "address") return who;
  if (t.type === "bool") return true;
  if (t.type.startsWith("bytes")) return t.type === "bytes" ? "0x" : "0x" + "11".repeat(Number(t.type.slice(5)));
  if (t.type === "string") return "x";
  if (t.type.startsWith("int")) return 1n;
  return 1n;
}

describe("attack: unauthorized writes of prices, σ or parameters (KiloEx)", () => {
  it("every privileged or internal function reverts with an access error for a random account, and no permissionless function takes a price or σ", async () => {
    const f = await loadFixture(sigmaFixture);
    const rnd = ethers.Wallet.createRandom().connect(ethers.provider);
    await f.admin.sendTransaction({ to: rnd.address, value: ethers.parseEther("1") });
    const contracts: [string, BaseContract][] = [
      ["ClearingHouse", f.clearingHouse],
      ["Vault", f.vault],
      ["RiskManager", f.riskManager],
      ["LiquidityPool", f.pool],
      ["SigmaAutomation", f.automation],
    ];
    let checked = 0;
    for (const [name, c] of contracts) {
      const frags = c.interface.fragments.filter((x): x is FunctionFragment => x.type === "function") as FunctionFragment[];
      for (const fn of frags) {
        if (fn.stateMutability === "view" || fn.stateMutability === "pure") continue;
        if (PERMISSIONLESS[name]?.includes(fn.name)) {
          // A permissionless function never takes a price, σ or risk number (order limits and triggers are the
          // caller's own bounds on its own fill, not inputs to anyone's pricing).
          for (const i of fn.inputs) expect(/price|sigma|vol|ratio|answer/i.test(i.name) && !/acceptable|trigger/i.test(i.name), `${name}.${fn.name}(${i.name})`).to.equal(false);
          continue;
        }
        const args = fn.inputs.map((i) => dummy(i, rnd.address));
        let err: string | undefined;
        try {
          await (c.connect(rnd) as any)[fn.format()].staticCall(...args, ...(fn.payable ? [{ value: 1n }] : []));
          err = "<no revert>";
        } catch (e: any) {
          const data = e.data ?? e.error?.data;
          const parsed = data && data !== "0x" ? c.interface.parseError(data) : null;
          err = parsed?.name ?? `<${data ?? e.shortMessage}>`;
        }
        const expected = OWNER_ONLY[name]?.includes(fn.name) ? new Set(["ClearingHouseNotOrderOwner"]) : ACCESS_ERRORS;
        expect(expected.has(err!), `${name}.${fn.format()} from a random account: ${err}`).to.equal(true);
        checked++;
      }
    }
    expect(checked, "privileged functions found").to.be.greaterThan(15);

    // The only writers of price and σ are Chainlink feeds: a poke by anyone changes σ only as the feeds say.
    const [sigma0] = await f.riskManager.ratios(0);
    await f.riskManager.connect(rnd).pokeVolatility(0);
    expect((await f.riskManager.ratios(0))[0]).to.equal(sigma0);
  });

  it("roles are separated: a guardian cannot set parameters, a parameter setter cannot pause, list markets or move fees", async () => {
    const f = await loadFixture(sigmaFixture);
    const [guardian, setter] = f.others;
    await f.riskManager.grantRole(ROLES.GUARDIAN, guardian.address);
    await f.riskManager.grantRole(ROLES.PARAM_SETTER, setter.address);
    await expect(f.riskManager.connect(guardian).setMarketParam(0, PARAM.TakerFee, 0)).to.be.revertedWithCustomError(f.riskManager, "AccessControlUnauthorizedAccount");
    await expect(f.clearingHouse.connect(guardian).setParam(ethers.encodeBytes32String("minDelay"), 10)).to.be.revertedWithCustomError(f.clearingHouse, "AccessControlUnauthorizedAccount");
    await f.riskManager.connect(guardian).setOpeningPaused(0, true);
    await expect(f.riskManager.connect(setter).setOpeningPaused(0, false)).to.be.revertedWithCustomError(f.riskManager, "AccessControlUnauthorizedAccount");
    await expect(f.riskManager.connect(setter).setMarketFeeds(0, f.markets[0].priceFeed, f.markets[0].volFeed)).to.be.revertedWithCustomError(f.riskManager, "AccessControlUnauthorizedAccount");
    await expect(f.vault.connect(setter).withdrawProtocolFees(setter.address, 1)).to.be.revertedWithCustomError(f.vault, "AccessControlUnauthorizedAccount");
    await expect(f.riskManager.connect(setter).grantRole(ROLES.GUARDIAN, setter.address)).to.be.revertedWithCustomError(f.riskManager, "AccessControlUnauthorizedAccount");
    // Even a setter stays within hard bounds.
    await expect(f.riskManager.connect(setter).setMarketParam(0, PARAM.TakerFee, ethers.parseUnits("0.02", 18))).to.be.revertedWithCustomError(f.riskManager, "RiskParamOutOfBounds");
    await f.riskManager.connect(setter).setMarketParam(0, PARAM.TakerFee, ethers.parseUnits("0.0006", 18));
  });
});
