import { expect } from "chai";
import { ethers } from "hardhat";
import fc from "fast-check";
import { exp2NegD18, WAD } from "../../sdk/volatility";
import { testTimeout } from "../fixture";

/** FixedPointMath.exp2NegD18 is unrolled with its constants inline: it must equal, to the wei, the previous
 * table-driven loop (kept in the harness) and sdk/volatility.ts's exp2NegD18 on every input. */
describe("FixedPointMath.exp2NegD18 (unrolled) vs the table loop and the TypeScript mirror", function () {
  this.timeout(testTimeout(300_000));

  async function harness() {
    return (await ethers.getContractFactory("FixedPointMathHarness")).deploy();
  }

  function structuredInputs(): bigint[] {
    const xs: bigint[] = [0n, 1n, WAD - 1n, WAD, WAD + 1n, 119n * WAD + WAD - 1n, 120n * WAD, 200n * WAD, 2n ** 255n];
    // Each binary digit of the fraction alone, all digits, and alternating digits, at several integer parts.
    const fracs: bigint[] = [];
    for (let i = 0; i < 64; i++) fracs.push((1n << BigInt(i)) * WAD / 2n ** 64n + 1n);
    fracs.push(WAD - 1n, (0x5555555555555555n * WAD) >> 64n, (0xaaaaaaaaaaaaaaaan * WAD) >> 64n);
    for (const n of [0n, 1n, 7n, 63n, 119n]) for (const f of fracs) xs.push(n * WAD + f);
    // The decay exponents the estimator and the poke use: dt·1e18/halfLife.
    for (const hl of [3600n, 4n * 3600n, 86400n, 7n * 86400n, 30n * 86400n, 60n]) {
      for (const dt of [1n, 59n, 3600n, 3601n, 3659n, 5400n, 7199n, 86400n, 999_999n]) xs.push((dt * WAD) / hl);
    }
    xs.push(WAD / 730n, (7n * WAD) / (24n * 730n));
    return xs;
  }

  it("equals the reference on structured inputs (every fraction digit, integer parts up to 120, real decays)", async () => {
    const h = await harness();
    const xs = structuredInputs();
    const got = await h.exp2NegD18Many(xs);
    const ref = await h.exp2NegD18ReferenceMany(xs);
    expect([...got]).to.deep.equal([...ref]);
    expect([...got]).to.deep.equal(xs.map(exp2NegD18));
    expect(got[0]).to.equal(WAD);
    expect(got[xs.indexOf(120n * WAD)]).to.equal(0n);
  });

  it("equals the reference on 4,000 random inputs (fast-check)", async () => {
    const h = await harness();
    const xs = fc.sample(
      fc.oneof(
        fc.bigInt({ min: 0n, max: 130n * WAD }),
        fc.bigInt({ min: 0n, max: 2n * WAD }),
        fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }),
      ),
      { numRuns: 4000, seed: 20261122 },
    );
    for (let i = 0; i < xs.length; i += 500) {
      const chunk = xs.slice(i, i + 500);
      const got = [...(await h.exp2NegD18Many(chunk))];
      expect(got).to.deep.equal([...(await h.exp2NegD18ReferenceMany(chunk))]);
      expect(got).to.deep.equal(chunk.map(exp2NegD18));
    }
  });

  it("is at least 4× cheaper than the table loop", async () => {
    const h = await harness();
    const x = (WAD * 2n) / 3n; // about half the fraction digits set
    const [unrolled, reference] = await h.gasOf(x);
    expect(unrolled * 4n).to.be.lt(reference);
  });
});
