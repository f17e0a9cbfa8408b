/**
 * Deploys Sigma and writes deployments/<network>.json.
 *
 *   npx hardhat run scripts/deploy.ts                      # in-process network (file: deployments/hardhat.json)
 *   npx hardhat run scripts/deploy.ts --network localhost  # a running `hardhat node` / anvil
 *
 * Locally it deploys a 6-decimal USDC mock and Chainlink MockV3Aggregator price and volatility feeds.
 * On other networks it reads real addresses from deploy-config/<network>.json:
 *   { "collateral": "0x…", "sequencerFeed": "0x…", "sequencerGracePeriod": 3600,
 *     "feeds": { "ETH-PERP": { "priceFeed": "0x…", "volFeed": "0x…" }, … } }
 * Environment: SIGMA_DEPLOY_OUT (output folder, default deployments/).
 */
import * as fs from "fs";
import * as path from "path";
import hre from "hardhat";
import { deploySigma, DeployOptions } from "./lib/deploy";
import { buildDeploymentFile, writeDeploymentFile } from "./lib/deployment-file";

async function main() {
  const [deployer] = await hre.ethers.getSigners();
  const network = hre.network.name;
  const chainId = Number((await hre.ethers.provider.getNetwork()).chainId);
  const opts: DeployOptions = {};
  const cfgFile = path.join(__dirname, "..", "deploy-config", `${network}.json`);
  if (fs.existsSync(cfgFile)) {
    const cfg = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
    opts.collateral = cfg.collateral;
    opts.feeds = cfg.feeds;
    opts.sequencerFeed = cfg.sequencerFeed;
    opts.sequencerGracePeriod = cfg.sequencerGracePeriod;
    opts.admin = cfg.admin;
  } else if (network !== "hardhat" && network !== "localhost") {
    throw new Error(`no deploy-config/${network}.json: real networks need feed and collateral addresses`);
  }
  const d = await deploySigma(deployer, opts);
  const file = await buildDeploymentFile(network, chainId, d);
  const out = writeDeploymentFile(process.env.SIGMA_DEPLOY_OUT ?? path.join(__dirname, "..", "deployments"), file);
  console.log(`Sigma deployed on ${network} (chain ${chainId}) at block ${file.deploymentBlock}`);
  for (const [k, v] of Object.entries(file.contracts)) console.log(`  ${k.padEnd(14)} ${v}`);
  for (const m of file.markets) console.log(`  market ${m.marketId} ${m.symbol} price ${m.priceFeed} vol ${m.volFeed}`);
  console.log(`deployment file: ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
