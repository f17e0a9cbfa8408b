import hre from "hardhat";
import { runScenario } from "./lib/scenario";
const stats = new Map<string, {n:number, ms:number}>();
const prov: any = hre.ethers.provider;
const orig0 = prov.send.bind(prov);
const orig = (a: any) => orig0(a.method, a.params);
prov.send = async (method: string, params: any) => { const args = {method, params};
  const t = process.hrtime.bigint();
  try { return await orig(args); } finally {
    let key = args.method;
    if (key === "eth_call" || key === "eth_estimateGas" || key === "eth_sendTransaction") key += ":" + (args.params?.[0]?.data ?? "").slice(0, 10);
    const s = stats.get(key) ?? {n:0, ms:0}; s.n++; s.ms += Number(process.hrtime.bigint() - t)/1e6; stats.set(key, s);
  }
};
async function main() {
  const t = Date.now();
  await runScenario(hre, { });
  console.log("total", Date.now()-t);
  const rows = [...stats.entries()].sort((a,b)=>b[1].ms-a[1].ms).slice(0,25);
  for (const [k, v] of rows) console.log(k.padEnd(40), v.n, v.ms.toFixed(0));
}
main();
