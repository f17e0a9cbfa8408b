import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, impersonateAccount, setBalance } from "@nomicfoundation/hardhat-network-helpers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { sigmaFixture, trade, setPrice, usdc, d18, ETH, Fixture } from "../fixture";
import { PARAM } from "../../scripts/lib/params";
import type { MockERC20, Vault } from "../../typechain-types";

// ------------------------------------------------------------------ MarginMath mirror (bigint)
// Mirrors contracts/libraries/MarginMath.sol line by line so expected values are computed independently.
const WAD = 10n ** 18n;
const YEAR = 365n * 86400n;
const abs = (x: bigint) => (x < 0n ? -x : x);
const min = (a: bigint, b: bigint) => (a < b ? a : b);
const max = (a: bigint, b: bigint) => (a > b ? a : b);
const ceilDiv = (a: bigint, b: bigint) => (a === 0n ? 0n : (a - 1n) / b + 1n);
const mulDiv = (a: bigint, b: bigint, d: bigint, up = false) => (up ? ceilDiv(a * b, d) : (a * b) / d);
function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = n;
  let y = (x + 1n) / 2n;
  while (y < x) {
    x = y;
    y = (x + n / x) / 2n;
  }
  return x;
}
const sqrtHorizonD18 = (h: bigint) => isqrt((h * WAD * WAD) / YEAR);
const moveD18 = (z: bigint, s: bigint, sh: bigint) => mulDiv(mulDiv(z, s, WAD, true), sh, WAD, true);
function baseRatios(sigma: bigint) {
  // Default market parameters (scripts/lib/params.ts): z_mm 3, z_im 5, h 1 h, liqFee 0.5%, mmr ∈ [0.5%, 25%], imr ≥ 1%.
  const sh = sqrtHorizonD18(3600n);
  const mmr = min(max(moveD18(d18(3), sigma, sh) + d18("0.005"), d18("0.005")), d18("0.25"));
  let imr = min(max(moveD18(d18(5), sigma, sh) + d18("0.005"), d18("0.01")), WAD);
  if (imr < mmr) imr = mmr;
  return { mmr, imr };
}
const ADD_ON = d18("0.01");
const ETH_SKEW_SCALE = d18(100000);
const TAKER = d18("0.0005");
const MAKER = d18("0.0002");
const notionalUp = (a: bigint, p: bigint) => mulDiv(a, p, WAD, true);
const requirement = (a: bigint, p: bigint, ratio: bigint) =>
  mulDiv(notionalUp(a, p), ratio + mulDiv(a, ADD_ON, ETH_SKEW_SCALE, true), WAD, true);
function fillPrice(price: bigint, skew: bigint, delta: bigint, scale = ETH_SKEW_SCALE) {
  const two = 2n * scale;
  return mulDiv(price, two + 2n * skew + delta, two, delta > 0n);
}
function tradeFee(skew: bigint, delta: bigint, fill: bigint) {
  const ad = abs(delta);
  const makerPart = skew !== 0n && skew > 0n !== delta > 0n ? min(ad, abs(skew)) : 0n;
  return mulDiv(makerPart * MAKER + (ad - makerPart) * TAKER, fill, WAD * WAD, true);
}
function mulDivSigned(a: bigint, b: bigint, d: bigint, up: boolean) {
  const neg = a < 0n;
  const m = mulDiv(abs(a), b, d, up !== neg);
  return neg ? -m : m;
}
/** Fee split of the Vault (default: 60% LP, 20% insurance, rest protocol). */
function feeSplit(fee: bigint, lp = d18("0.6"), ins = d18("0.2")) {
  const toInsurance = (fee * ins) / WAD;
  const toPool = (fee * lp) / WAD;
  return { toPool, toInsurance, toProtocol: fee - toInsurance - toPool };
}
const SCALE6 = 10n ** 12n;
const DEFAULT_ADMIN_ROLE = ethers.ZeroHash;

async function impersonate(addr: string): Promise<HardhatEthersSigner> {
  await impersonateAccount(addr);
  await setBalance(addr, 10n ** 20n);
  return ethers.getSigner(addr);
}

async function newToken(decimals: number): Promise<MockERC20> {
  const F = await ethers.getContractFactory("MockERC20");
  return (await F.deploy("Token", "TKN", decimals)) as unknown as MockERC20;
}

async function newVault(token: string, admin: string): Promise<Vault> {
  const F = await ethers.getContractFactory("Vault");
  return (await F.deploy(token, admin)) as unknown as Vault;
}

async function signPermit(
  f: Fixture,
  owner: HardhatEthersSigner,
  spender: string,
  value: bigint,
  deadline: bigint,
) {
  const [, name, version, chainId, verifyingContract] = await f.token.eip712Domain();
  const sig = await owner.signTypedData(
    { name, version, chainId, verifyingContract },
    {
      Permit: [
        { name: "owner", type: "address" },
        { name: "spender", type: "address" },
        { name: "value", type: "uint256" },
        { name: "nonce", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    },
    { owner: owner.address, spender, value, nonce: await f.token.nonces(owner.address), deadline },
  );
  return ethers.Signature.from(sig);
}

describe("Vault", () => {
  describe("deposit", () => {
    it("deposit for self credits the caller, pulls exactly the amount and emits Deposited(account, from, amount)", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      const vaultAddr = await f.vault.getAddress();
      const balBefore = await f.token.balanceOf(t.address);
      const vaultBefore = await f.token.balanceOf(vaultAddr);
      await expect(f.vault.connect(t).deposit(t.address, usdc(1234.5)))
        .to.emit(f.vault, "Deposited")
        .withArgs(t.address, t.address, usdc(1234.5));
      expect(await f.vault.collateralOf(t.address)).to.equal(usdc(1234.5));
      expect(await f.token.balanceOf(t.address)).to.equal(balBefore - usdc(1234.5));
      expect(await f.token.balanceOf(vaultAddr)).to.equal(vaultBefore + usdc(1234.5));
    });

    it("deposit for another account credits that account and debits the payer", async () => {
      const f = await loadFixture(sigmaFixture);
      const [payer, beneficiary] = f.traders;
      const payerBefore = await f.token.balanceOf(payer.address);
      const benBefore = await f.token.balanceOf(beneficiary.address);
      await expect(f.vault.connect(payer).deposit(beneficiary.address, usdc(500)))
        .to.emit(f.vault, "Deposited")
        .withArgs(beneficiary.address, payer.address, usdc(500));
      expect(await f.vault.collateralOf(beneficiary.address)).to.equal(usdc(500));
      expect(await f.vault.collateralOf(payer.address)).to.equal(0n);
      expect(await f.token.balanceOf(payer.address)).to.equal(payerBefore - usdc(500));
      expect(await f.token.balanceOf(beneficiary.address)).to.equal(benBefore);
    });

    it("repeated deposits accumulate", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(100));
      await f.vault.connect(t).deposit(t.address, 1n);
      expect(await f.vault.collateralOf(t.address)).to.equal(usdc(100) + 1n);
    });

    it("deposit without allowance reverts with the token's ERC20InsufficientAllowance", async () => {
      const f = await loadFixture(sigmaFixture);
      const u = f.others[0];
      await f.token.mint(u.address, usdc(10));
      await expect(f.vault.connect(u).deposit(u.address, usdc(10)))
        .to.be.revertedWithCustomError(f.token, "ERC20InsufficientAllowance")
        .withArgs(await f.vault.getAddress(), 0n, usdc(10));
    });
  });

  describe("depositWithPermit", () => {
    it("deposits with an ERC-2612 signature and no prior approve, consuming the permit", async () => {
      const f = await loadFixture(sigmaFixture);
      const owner = f.others[0];
      const vaultAddr = await f.vault.getAddress();
      await f.token.mint(owner.address, usdc(1000));
      expect(await f.token.allowance(owner.address, vaultAddr)).to.equal(0n);
      const deadline = BigInt((await ethers.provider.getBlock("latest"))!.timestamp + 3600);
      const { v, r, s } = await signPermit(f, owner, vaultAddr, usdc(600), deadline);
      await expect(f.vault.connect(owner).depositWithPermit(owner.address, usdc(600), deadline, v, r, s))
        .to.emit(f.vault, "Deposited")
        .withArgs(owner.address, owner.address, usdc(600));
      expect(await f.vault.collateralOf(owner.address)).to.equal(usdc(600));
      expect(await f.token.balanceOf(owner.address)).to.equal(usdc(400));
      expect(await f.token.nonces(owner.address)).to.equal(1n);
      expect(await f.token.allowance(owner.address, vaultAddr)).to.equal(0n);
    });

    it("depositWithPermit may credit another account", async () => {
      const f = await loadFixture(sigmaFixture);
      const owner = f.others[0];
      const beneficiary = f.others[1];
      const vaultAddr = await f.vault.getAddress();
      await f.token.mint(owner.address, usdc(50));
      const deadline = BigInt((await ethers.provider.getBlock("latest"))!.timestamp + 3600);
      const { v, r, s } = await signPermit(f, owner, vaultAddr, usdc(50), deadline);
      await expect(f.vault.connect(owner).depositWithPermit(beneficiary.address, usdc(50), deadline, v, r, s))
        .to.emit(f.vault, "Deposited")
        .withArgs(beneficiary.address, owner.address, usdc(50));
      expect(await f.vault.collateralOf(beneficiary.address)).to.equal(usdc(50));
      expect(await f.vault.collateralOf(owner.address)).to.equal(0n);
    });

    it("still deposits when the permit was front-run (submitted first by someone else)", async () => {
      const f = await loadFixture(sigmaFixture);
      const owner = f.others[0];
      const frontRunner = f.others[1];
      const vaultAddr = await f.vault.getAddress();
      await f.token.mint(owner.address, usdc(1000));
      const deadline = BigInt((await ethers.provider.getBlock("latest"))!.timestamp + 3600);
      const { v, r, s } = await signPermit(f, owner, vaultAddr, usdc(700), deadline);
      // The front-runner copies the signature from the mempool and submits the permit first.
      await f.token.connect(frontRunner).permit(owner.address, vaultAddr, usdc(700), deadline, v, r, s);
      expect(await f.token.allowance(owner.address, vaultAddr)).to.equal(usdc(700));
      await expect(f.vault.connect(owner).depositWithPermit(owner.address, usdc(700), deadline, v, r, s))
        .to.emit(f.vault, "Deposited")
        .withArgs(owner.address, owner.address, usdc(700));
      expect(await f.vault.collateralOf(owner.address)).to.equal(usdc(700));
      expect(await f.token.balanceOf(owner.address)).to.equal(usdc(300));
      expect(await f.token.allowance(owner.address, vaultAddr)).to.equal(0n);
    });

    it("a permit signed by someone else, without allowance, reverts and moves nothing", async () => {
      const f = await loadFixture(sigmaFixture);
      const owner = f.others[0];
      const stranger = f.others[1];
      const vaultAddr = await f.vault.getAddress();
      await f.token.mint(owner.address, usdc(100));
      const deadline = BigInt((await ethers.provider.getBlock("latest"))!.timestamp + 3600);
      const { v, r, s } = await signPermit(f, stranger, vaultAddr, usdc(100), deadline);
      await expect(
        f.vault.connect(owner).depositWithPermit(owner.address, usdc(100), deadline, v, r, s),
      )
        .to.be.revertedWithCustomError(f.token, "ERC20InsufficientAllowance")
        .withArgs(vaultAddr, 0n, usdc(100));
      expect(await f.vault.collateralOf(owner.address)).to.equal(0n);
      expect(await f.token.balanceOf(owner.address)).to.equal(usdc(100));
    });

    it("an expired permit without allowance reverts", async () => {
      const f = await loadFixture(sigmaFixture);
      const owner = f.others[0];
      const vaultAddr = await f.vault.getAddress();
      await f.token.mint(owner.address, usdc(100));
      const deadline = BigInt((await ethers.provider.getBlock("latest"))!.timestamp - 1);
      const { v, r, s } = await signPermit(f, owner, vaultAddr, usdc(100), deadline);
      await expect(
        f.vault.connect(owner).depositWithPermit(owner.address, usdc(100), deadline, v, r, s),
      ).to.be.revertedWithCustomError(f.token, "ERC20InsufficientAllowance");
      expect(await f.vault.collateralOf(owner.address)).to.equal(0n);
    });
  });

  describe("withdraw", () => {
    it("without positions the whole collateral is free and withdraws to any address (Withdrawn event)", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t, to] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(1000));
      expect(await f.clearingHouse.freeCollateral(t.address)).to.equal(usdc(1000));
      const toBefore = await f.token.balanceOf(to.address);
      await expect(f.vault.connect(t).withdraw(usdc(1000), to.address))
        .to.emit(f.vault, "Withdrawn")
        .withArgs(t.address, to.address, usdc(1000));
      expect(await f.vault.collateralOf(t.address)).to.equal(0n);
      expect(await f.token.balanceOf(to.address)).to.equal(toBefore + usdc(1000));
    });

    it("withdraw beyond collateral without positions reverts with VaultInsufficientFreeCollateral", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10));
      await expect(f.vault.connect(t).withdraw(usdc(10) + 1n, t.address))
        .to.be.revertedWithCustomError(f.vault, "VaultInsufficientFreeCollateral")
        .withArgs(t.address, usdc(10) + 1n, usdc(10));
    });

    describe("with an open position (ETH funding rate set to 0 so the figures are time-independent)", () => {
      async function openLong(f: Fixture) {
        await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0n);
        const [t] = f.traders;
        const deposit = usdc(10000);
        await f.vault.connect(t).deposit(t.address, deposit);
        const size = d18(10);
        await trade(f, t, ETH, size);
        const fill = fillPrice(d18(2000), 0n, size);
        const fee = tradeFee(0n, size, fill);
        const collateral = deposit - ceilDiv(fee, SCALE6);
        const openNotional = mulDivSigned(size, fill, WAD, true);
        return { t, size, fill, fee, collateral, openNotional };
      }

      function expectedFree(collateral: bigint, size: bigint, openNotional: bigint, price: bigint) {
        const { imr, mmr } = baseRatios(d18("0.5"));
        const pnl = mulDivSigned(size, price, WAD, false) - openNotional;
        const equity = collateral * SCALE6 + pnl;
        const im = requirement(size, price, imr);
        const mm = requirement(size, price, mmr);
        const base = min(collateral * SCALE6, equity < 0n ? 0n : equity) - im;
        return { pnl, equity, im, mm, free: base <= 0n ? 0n : base / SCALE6 };
      }

      it("free collateral equals min(collateral, equity) − initial requirement, exactly", async () => {
        const f = await loadFixture(sigmaFixture);
        const { t, size, collateral, openNotional, fill } = await openLong(f);
        expect(fill).to.equal(d18("2000.1"));
        const pos = await f.clearingHouse.position(t.address, ETH);
        expect(pos.sizeD18).to.equal(size);
        const e = expectedFree(collateral, size, openNotional, d18(2000));
        const s = await f.clearingHouse.accountSummary(t.address);
        expect(s.collateral).to.equal(collateral);
        expect(s.unrealizedPnlD18).to.equal(e.pnl);
        expect(s.equityD18).to.equal(e.equity);
        expect(s.initialRequirementD18).to.equal(e.im);
        expect(s.maintenanceRequirementD18).to.equal(e.mm);
        expect(s.freeCollateral).to.equal(e.free);
        expect(await f.clearingHouse.freeCollateral(t.address)).to.equal(e.free);
        // Equity < collateral here (entry paid the skew premium), so equity is the binding term.
        expect(e.equity < collateral * SCALE6).to.equal(true);
      });

      it("withdraw beyond free collateral reverts with VaultInsufficientFreeCollateral(account, requested, available) and changes nothing", async () => {
        const f = await loadFixture(sigmaFixture);
        const { t, collateral, size, openNotional } = await openLong(f);
        const { free } = expectedFree(collateral, size, openNotional, d18(2000));
        const vaultAddr = await f.vault.getAddress();
        const walletBefore = await f.token.balanceOf(t.address);
        const vaultBefore = await f.token.balanceOf(vaultAddr);
        await expect(f.vault.connect(t).withdraw(free + 1n, t.address))
          .to.be.revertedWithCustomError(f.vault, "VaultInsufficientFreeCollateral")
          .withArgs(t.address, free + 1n, free);
        expect(await f.vault.collateralOf(t.address)).to.equal(collateral);
        expect(await f.token.balanceOf(t.address)).to.equal(walletBefore);
        expect(await f.token.balanceOf(vaultAddr)).to.equal(vaultBefore);
        expect((await f.clearingHouse.position(t.address, ETH)).sizeD18).to.equal(size);
      });

      it("withdrawing exactly the free collateral succeeds and leaves nothing free", async () => {
        const f = await loadFixture(sigmaFixture);
        const { t, collateral, size, openNotional } = await openLong(f);
        const { free } = expectedFree(collateral, size, openNotional, d18(2000));
        const walletBefore = await f.token.balanceOf(t.address);
        await expect(f.vault.connect(t).withdraw(free, t.address))
          .to.emit(f.vault, "Withdrawn")
          .withArgs(t.address, t.address, free);
        expect(await f.vault.collateralOf(t.address)).to.equal(collateral - free);
        expect(await f.token.balanceOf(t.address)).to.equal(walletBefore + free);
        expect(await f.clearingHouse.freeCollateral(t.address)).to.equal(0n);
        await expect(f.vault.connect(t).withdraw(1n, t.address))
          .to.be.revertedWithCustomError(f.vault, "VaultInsufficientFreeCollateral")
          .withArgs(t.address, 1n, 0n);
      });

      it("unrealized profit is not withdrawable: free = collateral − initial requirement when equity > collateral", async () => {
        const f = await loadFixture(sigmaFixture);
        const { t, collateral, size, openNotional } = await openLong(f);
        await setPrice(f, ETH, "2500");
        const e = expectedFree(collateral, size, openNotional, d18(2500));
        expect(e.pnl).to.equal(d18(25000) - openNotional);
        expect(e.equity > collateral * SCALE6).to.equal(true);
        const expected = (collateral * SCALE6 - e.im) / SCALE6;
        expect(e.free).to.equal(expected);
        expect(await f.clearingHouse.freeCollateral(t.address)).to.equal(expected);
        await expect(f.vault.connect(t).withdraw(expected + 1n, t.address))
          .to.be.revertedWithCustomError(f.vault, "VaultInsufficientFreeCollateral")
          .withArgs(t.address, expected + 1n, expected);
        // Even the profit itself (a smaller amount than collateral + profit) cannot be taken out in full.
        await expect(f.vault.connect(t).withdraw(collateral, t.address)).to.be.revertedWithCustomError(
          f.vault,
          "VaultInsufficientFreeCollateral",
        );
        expect(await f.vault.collateralOf(t.address)).to.equal(collateral);
      });
    });
  });

  describe("zero amounts and addresses", () => {
    it("deposit of 0 reverts with VaultZeroAmount", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await expect(f.vault.connect(t).deposit(t.address, 0n)).to.be.revertedWithCustomError(f.vault, "VaultZeroAmount");
    });
    it("deposit to the zero address reverts with VaultZeroAmount", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await expect(f.vault.connect(t).deposit(ethers.ZeroAddress, 1n)).to.be.revertedWithCustomError(
        f.vault,
        "VaultZeroAmount",
      );
    });
    it("depositWithPermit of 0 reverts with VaultZeroAmount", async () => {
      const f = await loadFixture(sigmaFixture);
      const owner = f.others[0];
      const deadline = BigInt((await ethers.provider.getBlock("latest"))!.timestamp + 3600);
      const { v, r, s } = await signPermit(f, owner, await f.vault.getAddress(), 0n, deadline);
      await expect(
        f.vault.connect(owner).depositWithPermit(owner.address, 0n, deadline, v, r, s),
      ).to.be.revertedWithCustomError(f.vault, "VaultZeroAmount");
    });
    it("withdraw of 0 and withdraw to the zero address revert with VaultZeroAmount", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10));
      await expect(f.vault.connect(t).withdraw(0n, t.address)).to.be.revertedWithCustomError(f.vault, "VaultZeroAmount");
      await expect(f.vault.connect(t).withdraw(1n, ethers.ZeroAddress)).to.be.revertedWithCustomError(
        f.vault,
        "VaultZeroAmount",
      );
      expect(await f.vault.collateralOf(t.address)).to.equal(usdc(10));
    });
    it("depositInsurance of 0 reverts with VaultZeroAmount", async () => {
      const f = await loadFixture(sigmaFixture);
      await expect(f.vault.connect(f.traders[0]).depositInsurance(0n)).to.be.revertedWithCustomError(
        f.vault,
        "VaultZeroAmount",
      );
    });
    it("withdrawProtocolFees of 0 or to the zero address reverts with VaultZeroAmount", async () => {
      const f = await loadFixture(sigmaFixture);
      await expect(f.vault.withdrawProtocolFees(f.admin.address, 0n)).to.be.revertedWithCustomError(
        f.vault,
        "VaultZeroAmount",
      );
      await expect(f.vault.withdrawProtocolFees(ethers.ZeroAddress, 1n)).to.be.revertedWithCustomError(
        f.vault,
        "VaultZeroAmount",
      );
    });
  });

  describe("access control", () => {
    it("only the clearinghouse can call settleTrade and settleLiquidation (VaultUnauthorized)", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await expect(f.vault.connect(t).settleTrade(t.address, 0n, 0n))
        .to.be.revertedWithCustomError(f.vault, "VaultUnauthorized")
        .withArgs(t.address);
      await expect(f.vault.connect(t).settleLiquidation(t.address, 0n, 0n, t.address, 0n, 0n))
        .to.be.revertedWithCustomError(f.vault, "VaultUnauthorized")
        .withArgs(t.address);
      // Not even the pool may settle trades.
      const poolSigner = await impersonate(await f.pool.getAddress());
      await expect(f.vault.connect(poolSigner).settleTrade(t.address, 1n, 0n))
        .to.be.revertedWithCustomError(f.vault, "VaultUnauthorized")
        .withArgs(poolSigner.address);
    });

    it("only the pool can call creditPool and debitPool (VaultUnauthorized), not even the clearinghouse", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await expect(f.vault.connect(t).creditPool(1n))
        .to.be.revertedWithCustomError(f.vault, "VaultUnauthorized")
        .withArgs(t.address);
      await expect(f.vault.connect(t).debitPool(t.address, 1n))
        .to.be.revertedWithCustomError(f.vault, "VaultUnauthorized")
        .withArgs(t.address);
      const chSigner = await impersonate(await f.clearingHouse.getAddress());
      await expect(f.vault.connect(chSigner).debitPool(chSigner.address, 1n))
        .to.be.revertedWithCustomError(f.vault, "VaultUnauthorized")
        .withArgs(chSigner.address);
      await expect(f.vault.connect(chSigner).creditPool(1n))
        .to.be.revertedWithCustomError(f.vault, "VaultUnauthorized")
        .withArgs(chSigner.address);
    });

    it("wire can be called only once (VaultAlreadyWired)", async () => {
      const f = await loadFixture(sigmaFixture);
      await expect(f.vault.wire(f.admin.address, f.admin.address)).to.be.revertedWithCustomError(
        f.vault,
        "VaultAlreadyWired",
      );
      expect(await f.vault.clearingHouse()).to.equal(await f.clearingHouse.getAddress());
      expect(await f.vault.liquidityPool()).to.equal(await f.pool.getAddress());
    });

    it("wire is admin-only, rejects zero addresses and emits Wired", async () => {
      const f = await loadFixture(sigmaFixture);
      const v = await newVault(await f.token.getAddress(), f.admin.address);
      const [t, a, b] = f.traders;
      await expect(v.connect(t).wire(a.address, b.address))
        .to.be.revertedWithCustomError(v, "AccessControlUnauthorizedAccount")
        .withArgs(t.address, DEFAULT_ADMIN_ROLE);
      await expect(v.wire(ethers.ZeroAddress, b.address)).to.be.revertedWithCustomError(v, "VaultZeroAmount");
      await expect(v.wire(a.address, ethers.ZeroAddress)).to.be.revertedWithCustomError(v, "VaultZeroAmount");
      await expect(v.wire(a.address, b.address)).to.emit(v, "Wired").withArgs(a.address, b.address);
      await expect(v.wire(a.address, b.address)).to.be.revertedWithCustomError(v, "VaultAlreadyWired");
    });
  });

  describe("fee split", () => {
    it("defaults to 60% LP / 20% insurance", async () => {
      const f = await loadFixture(sigmaFixture);
      expect(await f.vault.lpFeeShareD18()).to.equal(d18("0.6"));
      expect(await f.vault.insuranceFeeShareD18()).to.equal(d18("0.2"));
    });

    it("setFeeSplit accepts the bounds (insurance ≤ 50%, sum ≤ 100%) and emits FeeSplitSet", async () => {
      const f = await loadFixture(sigmaFixture);
      await expect(f.vault.setFeeSplit(d18("0.5"), d18("0.5")))
        .to.emit(f.vault, "FeeSplitSet")
        .withArgs(d18("0.5"), d18("0.5"));
      expect(await f.vault.lpFeeShareD18()).to.equal(d18("0.5"));
      expect(await f.vault.insuranceFeeShareD18()).to.equal(d18("0.5"));
      await expect(f.vault.setFeeSplit(WAD, 0n)).to.emit(f.vault, "FeeSplitSet").withArgs(WAD, 0n);
      await expect(f.vault.setFeeSplit(0n, 0n)).to.emit(f.vault, "FeeSplitSet").withArgs(0n, 0n);
    });

    it("setFeeSplit above the bounds reverts with VaultInvalidFeeSplit and keeps the old split", async () => {
      const f = await loadFixture(sigmaFixture);
      const ppm = 10n ** 12n; // the split's resolution: one part per million
      await expect(f.vault.setFeeSplit(0n, d18("0.5") + ppm))
        .to.be.revertedWithCustomError(f.vault, "VaultInvalidFeeSplit")
        .withArgs(0n, d18("0.5") + ppm);
      await expect(f.vault.setFeeSplit(d18("0.5") + ppm, d18("0.5")))
        .to.be.revertedWithCustomError(f.vault, "VaultInvalidFeeSplit")
        .withArgs(d18("0.5") + ppm, d18("0.5"));
      await expect(f.vault.setFeeSplit(WAD + ppm, 0n))
        .to.be.revertedWithCustomError(f.vault, "VaultInvalidFeeSplit")
        .withArgs(WAD + ppm, 0n);
      expect(await f.vault.lpFeeShareD18()).to.equal(d18("0.6"));
      expect(await f.vault.insuranceFeeShareD18()).to.equal(d18("0.2"));
    });

    it("setFeeSplit rejects shares finer than one part per million (VaultInvalidFeeSplit)", async () => {
      const f = await loadFixture(sigmaFixture);
      await expect(f.vault.setFeeSplit(d18("0.3") + 1n, d18("0.1")))
        .to.be.revertedWithCustomError(f.vault, "VaultInvalidFeeSplit")
        .withArgs(d18("0.3") + 1n, d18("0.1"));
      await expect(f.vault.setFeeSplit(d18("0.3"), d18("0.1") + 1n))
        .to.be.revertedWithCustomError(f.vault, "VaultInvalidFeeSplit")
        .withArgs(d18("0.3"), d18("0.1") + 1n);
      await expect(f.vault.setFeeSplit(d18("0.333333"), d18("0.123456")))
        .to.emit(f.vault, "FeeSplitSet")
        .withArgs(d18("0.333333"), d18("0.123456"));
      expect(await f.vault.lpFeeShareD18()).to.equal(d18("0.333333"));
      expect(await f.vault.insuranceFeeShareD18()).to.equal(d18("0.123456"));
    });

    it("setFeeSplit is admin-only", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await expect(f.vault.connect(t).setFeeSplit(0n, 0n))
        .to.be.revertedWithCustomError(f.vault, "AccessControlUnauthorizedAccount")
        .withArgs(t.address, DEFAULT_ADMIN_ROLE);
    });

    it("a trade's fee is split exactly between pool, insurance and protocol (default and after setFeeSplit)", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      // No funding, so the second fill settles exactly zero PnL.
      await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0n);
      await f.vault.connect(t).deposit(t.address, usdc(10000));
      const pool0 = await f.vault.poolBalance();
      const size = d18(10);
      const fill = fillPrice(d18(2000), 0n, size);
      const fee = ceilDiv(tradeFee(0n, size, fill), SCALE6);
      expect(fee).to.equal(usdc("10.0005"));
      const s1 = feeSplit(fee);
      const { receipt } = await trade(f, t, ETH, size);
      await expect(receipt!.hash)
        .to.emit(f.vault, "TradeSettled")
        .withArgs(t.address, 0n, fee, s1.toPool, s1.toInsurance);
      expect(await f.vault.poolBalance()).to.equal(pool0 + s1.toPool);
      expect(await f.vault.insuranceFund()).to.equal(s1.toInsurance);
      expect(await f.vault.protocolFees()).to.equal(s1.toProtocol);

      // New split: 30% LP, 50% insurance, 20% protocol; the next fill pays a fee on the new split.
      await f.vault.setFeeSplit(d18("0.3"), d18("0.5"));
      const size2 = d18(5);
      const fill2 = fillPrice(d18(2000), size, size2);
      const fee2 = ceilDiv(tradeFee(size, size2, fill2), SCALE6);
      const s2 = feeSplit(fee2, d18("0.3"), d18("0.5"));
      const r2 = await trade(f, t, ETH, size2);
      await expect(r2.receipt!.hash)
        .to.emit(f.vault, "TradeSettled")
        .withArgs(t.address, 0n, fee2, s2.toPool, s2.toInsurance);
      expect(await f.vault.insuranceFund()).to.equal(s1.toInsurance + s2.toInsurance);
      expect(await f.vault.protocolFees()).to.equal(s1.toProtocol + s2.toProtocol);
    });
  });

  describe("protocol fees and insurance", () => {
    it("withdrawProtocolFees is admin-only and bounded by accrued fees", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t, to] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10000));
      await trade(f, t, ETH, d18(10));
      const accrued = feeSplit(usdc("10.0005")).toProtocol;
      expect(await f.vault.protocolFees()).to.equal(accrued);
      await expect(f.vault.connect(t).withdrawProtocolFees(t.address, 1n))
        .to.be.revertedWithCustomError(f.vault, "AccessControlUnauthorizedAccount")
        .withArgs(t.address, DEFAULT_ADMIN_ROLE);
      await expect(f.vault.withdrawProtocolFees(to.address, accrued + 1n))
        .to.be.revertedWithCustomError(f.vault, "VaultInsufficientProtocolFees")
        .withArgs(accrued + 1n, accrued);
      const before = await f.token.balanceOf(to.address);
      await expect(f.vault.withdrawProtocolFees(to.address, accrued))
        .to.emit(f.vault, "ProtocolFeesWithdrawn")
        .withArgs(to.address, accrued);
      expect(await f.token.balanceOf(to.address)).to.equal(before + accrued);
      expect(await f.vault.protocolFees()).to.equal(0n);
      await expect(f.vault.withdrawProtocolFees(to.address, 1n))
        .to.be.revertedWithCustomError(f.vault, "VaultInsufficientProtocolFees")
        .withArgs(1n, 0n);
    });

    it("depositInsurance adds to the insurance fund (InsuranceDeposited), not to the depositor's collateral", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      const vaultAddr = await f.vault.getAddress();
      const vaultBefore = await f.token.balanceOf(vaultAddr);
      await expect(f.vault.connect(t).depositInsurance(usdc(250)))
        .to.emit(f.vault, "InsuranceDeposited")
        .withArgs(t.address, usdc(250));
      expect(await f.vault.insuranceFund()).to.equal(usdc(250));
      expect(await f.vault.collateralOf(t.address)).to.equal(0n);
      expect(await f.token.balanceOf(vaultAddr)).to.equal(vaultBefore + usdc(250));
    });
  });

  describe("settlement waterfall (called as the clearinghouse)", () => {
    it("a loss beyond collateral is covered by the insurance fund first, then socialized to the pool (BadDebtCovered)", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t, insurer] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(100));
      await f.vault.connect(insurer).depositInsurance(usdc(30));
      const pool0 = await f.vault.poolBalance();
      const ch = await impersonate(await f.clearingHouse.getAddress());
      await expect(f.vault.connect(ch).settleTrade(t.address, -usdc(150), usdc(5)))
        .to.emit(f.vault, "BadDebtCovered")
        .withArgs(t.address, usdc(50), usdc(30), usdc(20));
      expect(await f.vault.collateralOf(t.address)).to.equal(0n);
      expect(await f.vault.insuranceFund()).to.equal(0n);
      // The pool receives what the trader and the insurance fund could pay; the fee finds nothing left.
      expect(await f.vault.poolBalance()).to.equal(pool0 + usdc(130));
      expect(await f.vault.protocolFees()).to.equal(0n);
    });

    it("a profit larger than the pool is paid by the pool, then the insurance fund, and the rest is forfeited (closing is never blocked)", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t, u] = f.traders;
      await f.vault.connect(u).depositInsurance(usdc(100));
      const pool0 = await f.vault.poolBalance();
      const c0 = await f.vault.collateralOf(t.address);
      const ch = await impersonate(await f.clearingHouse.getAddress());
      const profit = pool0 + usdc(150);
      await expect(f.vault.connect(ch).settleTrade(t.address, profit, 0n))
        .to.emit(f.vault, "ProfitHaircut")
        .withArgs(t.address, profit, pool0, usdc(100), usdc(50));
      expect(await f.vault.poolBalance()).to.equal(0n);
      expect(await f.vault.insuranceFund()).to.equal(0n);
      expect(await f.vault.collateralOf(t.address)).to.equal(c0 + pool0 + usdc(100));
    });

    it("settleLiquidation pays min(fee·share, cap) to the liquidator as collateral and the rest to insurance", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t, liq] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(1000));
      const pool0 = await f.vault.poolBalance();
      const ch = await impersonate(await f.clearingHouse.getAddress());
      // Loss 600 → 400 left; fee 100 → reward min(20, cap 15) = 15, insurance 85.
      await expect(
        f.vault.connect(ch).settleLiquidation(t.address, -usdc(600), usdc(100), liq.address, d18("0.2"), usdc(15)),
      )
        .to.emit(f.vault, "LiquidationFeePaid")
        .withArgs(t.address, liq.address, usdc(100), usdc(15), usdc(85));
      expect(await f.vault.collateralOf(t.address)).to.equal(usdc(300));
      expect(await f.vault.collateralOf(liq.address)).to.equal(usdc(15));
      expect(await f.vault.insuranceFund()).to.equal(usdc(85));
      expect(await f.vault.poolBalance()).to.equal(pool0 + usdc(600));
      // The fee is capped at what is left: 300 left, fee 1000 asked → 300 paid, reward 20% = 60.
      await expect(
        f.vault.connect(ch).settleLiquidation(t.address, 0n, usdc(1000), liq.address, d18("0.2"), usdc(500)),
      )
        .to.emit(f.vault, "LiquidationFeePaid")
        .withArgs(t.address, liq.address, usdc(300), usdc(60), usdc(240));
      expect(await f.vault.collateralOf(t.address)).to.equal(0n);
    });
  });

  describe("collateral token checks", () => {
    it("a fee-on-transfer token is rejected on deposit and on depositInsurance (VaultFeeOnTransferNotSupported)", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      const fot = await (await ethers.getContractFactory("MockFeeOnTransferERC20")).deploy();
      const v = await newVault(await fot.getAddress(), f.admin.address);
      await fot.mint(t.address, usdc(1000));
      await fot.connect(t).approve(await v.getAddress(), ethers.MaxUint256);
      await expect(v.connect(t).deposit(t.address, usdc(1000)))
        .to.be.revertedWithCustomError(v, "VaultFeeOnTransferNotSupported")
        .withArgs(usdc(1000), usdc(990));
      await expect(v.connect(t).depositInsurance(usdc(100)))
        .to.be.revertedWithCustomError(v, "VaultFeeOnTransferNotSupported")
        .withArgs(usdc(100), usdc(99));
      expect(await v.collateralOf(t.address)).to.equal(0n);
      expect(await fot.balanceOf(await v.getAddress())).to.equal(0n);
    });

    it("a token with more than 18 decimals is rejected at construction (VaultUnsupportedDecimals)", async () => {
      const f = await loadFixture(sigmaFixture);
      const t19 = await newToken(19);
      const F = await ethers.getContractFactory("Vault");
      await expect(F.deploy(await t19.getAddress(), f.admin.address))
        .to.be.revertedWithCustomError(F, "VaultUnsupportedDecimals")
        .withArgs(19);
    });

    it("tokenScale is 10^(18 − decimals) for 0, 6 and 18 decimals", async () => {
      const f = await loadFixture(sigmaFixture);
      for (const [dec, scale] of [
        [0, 10n ** 18n],
        [6, 10n ** 12n],
        [18, 1n],
      ] as const) {
        const tk = await newToken(dec);
        const v = await newVault(await tk.getAddress(), f.admin.address);
        expect(await v.tokenScale()).to.equal(scale);
        expect(await v.token()).to.equal(await tk.getAddress());
      }
      expect(await f.vault.tokenScale()).to.equal(SCALE6);
    });
  });

  describe("reentrancy", () => {
    async function reentrantVault() {
      const signers = await ethers.getSigners();
      const [admin, t] = signers;
      const tok = await (await ethers.getContractFactory("MockReentrantERC20")).deploy();
      const v = await newVault(await tok.getAddress(), admin.address);
      await tok.mint(t.address, usdc(1000));
      await tok.connect(t).approve(await v.getAddress(), ethers.MaxUint256);
      return { tok, v, t };
    }

    it("a token hook re-entering withdraw during withdraw fails with ReentrancyGuardReentrantCall and changes nothing", async () => {
      await loadFixture(sigmaFixture);
      const { tok, v, t } = await reentrantVault();
      await v.connect(t).deposit(t.address, usdc(100));
      const vAddr = await v.getAddress();
      await tok.setHook(vAddr, v.interface.encodeFunctionData("withdraw", [usdc(100), t.address]));
      await expect(v.connect(t).withdraw(usdc(100), t.address)).to.be.revertedWithCustomError(
        v,
        "ReentrancyGuardReentrantCall",
      );
      expect(await v.collateralOf(t.address)).to.equal(usdc(100));
      expect(await tok.balanceOf(vAddr)).to.equal(usdc(100));
      // Without the hook the same withdrawal works: the guard, not the amount, stopped it.
      await tok.setHook(ethers.ZeroAddress, "0x");
      await v.connect(t).withdraw(usdc(100), t.address);
      expect(await v.collateralOf(t.address)).to.equal(0n);
    });

    it("a token hook re-entering deposit/depositInsurance during deposit fails with ReentrancyGuardReentrantCall", async () => {
      await loadFixture(sigmaFixture);
      const { tok, v, t } = await reentrantVault();
      const vAddr = await v.getAddress();
      await tok.setHook(vAddr, v.interface.encodeFunctionData("depositInsurance", [1n]));
      await expect(v.connect(t).deposit(t.address, usdc(100))).to.be.revertedWithCustomError(
        v,
        "ReentrancyGuardReentrantCall",
      );
      await tok.setHook(vAddr, v.interface.encodeFunctionData("deposit", [t.address, 1n]));
      await expect(v.connect(t).depositInsurance(usdc(100))).to.be.revertedWithCustomError(
        v,
        "ReentrancyGuardReentrantCall",
      );
      expect(await v.collateralOf(t.address)).to.equal(0n);
      expect(await v.insuranceFund()).to.equal(0n);
      expect(await tok.balanceOf(vAddr)).to.equal(0n);
    });
  });
});
