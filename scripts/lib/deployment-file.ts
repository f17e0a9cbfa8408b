import * as fs from "fs";
import * as path from "path";
import type { SigmaDeployment } from "./deploy";

/** The deployment file integrators and keepers read: `deployments/<network>.json`. */
export interface DeploymentFile {
  network: string;
  chainId: number;
  deploymentBlock: number;
  deployedAt: string;
  contracts: {
    collateral: string;
    riskManager: string;
    vault: string;
    clearingHouse: string;
    liquidityPool: string;
    lens: string;
    automation: string;
    sequencerFeed?: string;
  };
  collateralDecimals: number;
  markets: { marketId: number; symbol: string; priceFeed: string; volFeed: string }[];
  params: Record<string, string>;
}

export async function buildDeploymentFile(network: string, chainId: number, d: SigmaDeployment): Promise<DeploymentFile> {
  const ch = d.clearingHouse;
  return {
    network,
    chainId,
    deploymentBlock: d.deploymentBlock,
    deployedAt: new Date().toISOString(),
    contracts: {
      collateral: await d.token.getAddress(),
      riskManager: await d.riskManager.getAddress(),
      vault: await d.vault.getAddress(),
      clearingHouse: await ch.getAddress(),
      liquidityPool: await d.pool.getAddress(),
      lens: await d.lens.getAddress(),
      automation: await d.automation.getAddress(),
      ...(d.sequencerFeed ? { sequencerFeed: await d.sequencerFeed.getAddress() } : {}),
    },
    collateralDecimals: Number(await d.token.decimals()),
    markets: d.markets,
    params: {
      minDelay: (await ch.minDelay()).toString(),
      maxAge: (await ch.maxAge()).toString(),
      minExecutionFee: (await ch.minExecutionFee()).toString(),
      liqRewardShareD18: (await ch.liqRewardShareD18()).toString(),
      liqRewardCapD18: (await ch.liqRewardCapD18()).toString(),
      reserveFactorD18: (await d.pool.reserveFactorD18()).toString(),
    },
  };
}

/** Writes atomically (temp file + rename) so a reader never sees half a file. */
export function writeDeploymentFile(dir: string, file: DeploymentFile): string {
  fs.mkdirSync(dir, { recursive: true });
  const target = path.join(dir, `${file.network}.json`);
  const tmp = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(file, null, 2) + "\n");
  fs.renameSync(tmp, target);
  return target;
}

export function readDeploymentFile(file: string): DeploymentFile {
  if (!fs.existsSync(file)) throw new Error(`deployment file not found: ${file}`);
  return JSON.parse(fs.readFileSync(file, "utf8")) as DeploymentFile;
}
