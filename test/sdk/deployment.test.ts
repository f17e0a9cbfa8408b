// Deployment files: the SDK reads what scripts/deploy.ts writes, rejects malformed files with one line per
// problem, checks the file against the chain, and connects typed contracts.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture } from "../fixture";
import { buildDeploymentFile, writeDeploymentFile } from "../../scripts/lib/deployment-file";
import type { DeploymentFile } from "../../scripts/lib/deployment-file";
import {
  DeploymentError,
  SigmaClient,
  SigmaDeploymentFile,
  connectContracts,
  parseDeployment,
  readDeployment,
  verifyDeployment,
} from "../../sdk";

function problems(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof DeploymentError) return e.problems;
    throw e;
  }
  throw new Error("expected a DeploymentError");
}

describe("SDK deployment files", function () {
  async function written() {
    const f = await loadFixture(sigmaFixture);
    const chainId = Number((await ethers.provider.getNetwork()).chainId);
    const file = await buildDeploymentFile("hardhat", chainId, f);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sigma-sdk-"));
    return { f, file, target: writeDeploymentFile(dir, file) };
  }

  it("reads the file scripts/deploy.ts writes and connects typed contracts to it", async function () {
    const { f, target, file } = await written();
    const d = readDeployment(target);
    // The deploy side's type is assignable to the SDK's (a compile-time check as much as a runtime one).
    const asSdk: Omit<SigmaDeploymentFile, "params"> = file as DeploymentFile;
    expect(d.contracts.clearingHouse).to.equal(asSdk.contracts.clearingHouse);
    expect(d.markets.map((m) => m.symbol)).to.deep.equal(["ETH-PERP", "BTC-PERP"]);
    const c = connectContracts(d, ethers.provider);
    expect(await c.clearingHouse.vaultAddress()).to.equal(await f.vault.getAddress());
    expect(await c.collateral.decimals()).to.equal(6n);
    expect(await c.lens!.quote(0, 10n ** 18n)).to.deep.equal(await f.lens.quote(0, 10n ** 18n));
    await verifyDeployment(d, ethers.provider);
    await SigmaClient.fromDeployment(target, ethers.provider, { verify: "full" });
  });

  it("normalizes addresses to their checksum and accepts files without lens and automation", async function () {
    const { file } = await written();
    // Lower-case every address, and drop the contracts older deployments did not have.
    const lower = JSON.parse(JSON.stringify(file).replace(/"0x[0-9a-fA-F]{40}"/g, (x) => x.toLowerCase()));
    const { lens: _l, automation: _a, ...older } = lower.contracts;
    const d = parseDeployment({ ...lower, contracts: older });
    expect(d.contracts.vault).to.equal(file.contracts.vault);
    expect(d.contracts.lens).to.equal(undefined);
    expect(connectContracts(d, ethers.provider).lens).to.equal(undefined);
  });

  it("rejects a malformed file with one line per problem", async function () {
    const { file } = await written();
    const bad = {
      ...file,
      chainId: "31337",
      contracts: { ...file.contracts, clearingHouse: "0x1234", vault: undefined },
      collateralDecimals: 24,
      markets: [{ ...file.markets[1], marketId: 1 }],
      params: { minDelay: "-5" },
    };
    const p = problems(() => parseDeployment(bad, "x.json"));
    expect(p.join("\n")).to.match(/x\.json: field "chainId"/);
    expect(p.join("\n")).to.match(/field "contracts\.clearingHouse": not an address/);
    expect(p.join("\n")).to.match(/field "contracts\.vault"/);
    expect(p.join("\n")).to.match(/field "collateralDecimals"/);
    expect(p.join("\n")).to.match(/field "markets\.0\.marketId": expected 0/);
    expect(p.join("\n")).to.match(/field "params\.minDelay"/);
    expect(problems(() => readDeployment("/nonexistent/sigma.json"))[0]).to.match(/not found/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sigma-sdk-"));
    fs.writeFileSync(path.join(dir, "broken.json"), "{");
    expect(problems(() => readDeployment(path.join(dir, "broken.json")))[0]).to.match(/not valid JSON/);
  });

  it("refuses a file for another chain, and one whose addresses hold no contracts", async function () {
    const { file } = await written();
    let err: unknown;
    try {
      await SigmaClient.fromDeployment({ ...file, chainId: 1 }, ethers.provider);
    } catch (e) {
      err = e;
    }
    expect(String(err)).to.match(/for chain 1/);
    const empty = ethers.Wallet.createRandom().address;
    const d = parseDeployment({ ...file, contracts: { ...file.contracts, lens: empty } });
    let verr: unknown;
    try {
      await verifyDeployment(d, ethers.provider);
    } catch (e) {
      verr = e;
    }
    expect((verr as DeploymentError).problems.join("\n")).to.match(/contracts\.lens: no code/);
  });
});
