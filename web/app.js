// Sigma trader page: plain ES module over ethers' browser build (served from node_modules by scripts/serve.ts).
import { ethers } from "/vendor/ethers.js";

const { Contract, JsonRpcProvider, BrowserProvider, Wallet, Network, formatUnits, parseUnits, MaxUint256, ZeroAddress } = ethers;

const ACCOUNT_SUMMARY =
  "tuple(uint256 collateral, int256 unrealizedPnlD18, int256 equityD18, uint256 initialRequirementD18, uint256 maintenanceRequirementD18, uint256 freeCollateral, uint256 healthD18, bool liquidatable, uint8 status, uint256 marginCallDeadline)";
const ERRORS = [
  "error ClearingHouseOrderNotFound(uint256 orderId)",
  "error ClearingHouseOrderNotReady(uint256 orderId, uint256 executableAt)",
  "error ClearingHouseOrderNotExpired(uint256 orderId, uint256 expiresAt)",
  "error ClearingHouseInvalidExpiry(uint256 expiresAt)",
  "error ClearingHouseInvalidOrder()",
  "error ClearingHouseExecutionFeeTooLow(uint256 sent, uint256 minimum)",
  "error ClearingHouseNotOrderOwner(uint256 orderId, address caller)",
  "error ClearingHouseAcceptablePriceExceeded(uint256 fillPriceD18, uint256 acceptablePriceD18)",
  "error ClearingHouseInsufficientMargin(address account, int256 equityD18, uint256 requiredD18)",
  "error ClearingHouseMarketReduceOnly(uint256 marketId, uint256 breakers)",
  "error ClearingHouseOpenInterestCap(uint256 marketId, uint256 oiNotionalD18, uint256 capD18)",
  "error ClearingHouseReduceOnly(uint256 marketId)",
  "error ClearingHouseTooManyMarkets(address account)",
  "error ClearingHouseOrderNotTriggered(uint256 orderId, uint256 priceD18, uint256 triggerPriceD18)",
  "error ClearingHouseOrderExpired(uint256 orderId, uint256 expiresAt)",
];
const CH_ABI = [
  "function commitOrder(uint256 marketId, int256 sizeDeltaD18, uint256 acceptablePriceD18) payable returns (uint256)",
  "function commitConditionalOrder(uint256 marketId, int256 sizeDeltaD18, uint256 acceptablePriceD18, uint256 triggerPriceD18, bool triggerAbove, bool reduceOnly, uint256 expiresAt) payable returns (uint256)",
  "function cancelOrder(uint256 orderId)",
  `function accountSummary(address account) view returns (${ACCOUNT_SUMMARY})`,
  "function position(address account, uint256 marketId) view returns (tuple(int128 sizeD18, int120 costBasisD18, bool used))",
  "function order(uint256 orderId) view returns (tuple(address account, uint8 marketId, uint8 flags, uint64 executionFee, int96 sizeDeltaD18, uint96 acceptablePriceD18, uint64 commitTime))",
  "function orderTrigger(uint256 orderId) view returns (tuple(uint96 triggerPriceD18, uint64 expiresAt))",
  "function minExecutionFee() view returns (uint64)",
  "function minDelay() view returns (uint32)",
  "function maxAge() view returns (uint32)",
  "event OrderCommitted(uint256 indexed orderId, address indexed account, uint256 indexed marketId, int256 sizeDeltaD18, uint256 acceptablePriceD18, uint256 executionFee, uint256 executableAt, uint256 expiresAt)",
  "event OrderTriggerSet(uint256 indexed orderId, uint256 triggerPriceD18, bool triggerAbove, bool reduceOnly, uint256 expiresAt)",
  "event OrderExecuted(uint256 indexed orderId, address indexed account, address indexed keeper, uint256 fillPriceD18)",
  "event OrderCancelled(uint256 indexed orderId, address indexed account, address indexed by, bytes reason)",
  ...ERRORS,
];
const RM_ABI = [
  "function marketCount() view returns (uint256)",
  "function marketSymbol(uint256) view returns (bytes32)",
  "function ratios(uint256) view returns (uint256 sigmaD18, uint256 mmrD18, uint256 imrD18)",
  "function maxLeverageD18(uint256) view returns (uint256)",
  "function priceD18(uint256) view returns (uint256)",
  "function marketRisk(uint256 marketId, bool forLiquidation) view returns (tuple(uint256 priceD18, uint256 sigmaD18, uint256 mmrD18, uint256 imrD18, uint256 liqFeeD18, uint256 sizeAddOnD18, uint256 skewScaleD18, uint256 takerFeeD18, uint256 makerFeeD18, uint256 maxFundingRateD18, uint256 oiCapRatioD18, uint256 breakers))",
];
const LENS_ABI = [
  "function quote(uint256 marketId, int256 sizeDeltaD18) view returns (uint256 fillPriceD18, uint256 feeD18)",
  "function liquidationPriceD18(address account, uint256 marketId) view returns (uint256)",
  "function breakEvenPriceD18(address account, uint256 marketId) view returns (uint256)",
  "function fundingRatePerDayD18(uint256 marketId) view returns (int256)",
];
const VAULT_ABI = [
  "function deposit(address account, uint256 amount)",
  "function withdraw(uint256 amount, address to)",
  "error VaultInsufficientFreeCollateral(uint256 requested, uint256 available)",
];
const ERC20_ABI = [
  "function balanceOf(address) view returns (uint256)",
  "function allowance(address, address) view returns (uint256)",
  "function approve(address, uint256) returns (bool)",
  "function mint(address to, uint256 amount)",
];
const STATUS = ["Healthy", "Margin callable", "Margin called", "Liquidatable"];
const ORDER_CONDITIONAL = 1, ORDER_TRIGGER_ABOVE = 2, ORDER_REDUCE_ONLY = 4;

const $ = (id) => document.getElementById(id);
const S = {
  cfg: null, dep: null, provider: null, signer: null, address: null,
  markets: [], prices: new Map(), decimals: 6, minFee: 0n, blockTime: 0,
  orders: new Map(), // id -> {id, marketId, sizeDeltaD18, acceptable, expiresAt, trigger?, above?, reduceOnly?, state}
  history: [], scannedTo: -1, busy: false,
};

// ----------------------------------------------------------------------------------------- formatting
const d18 = (x) => Number(formatUnits(x, 18));
const tok = (x) => Number(formatUnits(x, S.decimals));
const fmtUsd = (n, dp = 2) => (n < 0 ? "−$" : "$") + Math.abs(n).toLocaleString("en-US", { minimumFractionDigits: dp, maximumFractionDigits: dp });
const fmtNum = (n, dp = 4) => n.toLocaleString("en-US", { maximumFractionDigits: dp });
const pct = (x, dp = 2) => (d18(x) * 100).toFixed(dp) + "%";
const priceDp = (p) => (p >= 1000 ? 2 : 4);
const shortAddr = (a) => a.slice(0, 6) + "…" + a.slice(-4);

function banner(msg, kind = "") {
  const b = $("banner");
  if (!msg) return void (b.hidden = true);
  b.textContent = msg;
  b.className = kind;
  b.hidden = false;
}
function log(msg) { $("log").textContent = msg; }

function errMsg(e) {
  const r = e?.revert ?? e?.info?.error?.data?.revert;
  if (r?.name) return `${r.name}(${(r.args ?? []).map(String).join(", ")})`;
  return e?.shortMessage ?? e?.reason ?? e?.message ?? String(e);
}

// ----------------------------------------------------------------------------------------- setup
async function init() {
  S.cfg = await (await fetch("/config.json")).json();
  const r = await fetch("/deployment.json");
  if (!r.ok) { banner("No deployment yet: start the devnet (npm run devnet)."); return; }
  S.dep = await r.json();
  S.decimals = S.dep.collateralDecimals ?? 6;
  const net = Network.from(S.dep.chainId);
  S.provider = new JsonRpcProvider(new URL(S.cfg.rpcUrl, location.href).href, net, { staticNetwork: net, cacheTimeout: -1 });
  S.provider.pollingInterval = 1000;
  const c = S.dep.contracts;
  S.ch = new Contract(c.clearingHouse, CH_ABI, S.provider);
  S.rm = new Contract(c.riskManager, RM_ABI, S.provider);
  S.lens = new Contract(c.lens, LENS_ABI, S.provider);
  S.vault = new Contract(c.vault, VAULT_ABI, S.provider);
  S.token = new Contract(c.collateral, ERC20_ABI, S.provider);
  S.minFee = await S.ch.minExecutionFee();
  S.markets = S.dep.markets.map((m) => ({ id: m.marketId, symbol: m.symbol }));
  $("t-market").innerHTML = S.markets.map((m) => `<option value="${m.id}">${m.symbol}</option>`).join("");
  $("net").textContent = `${S.dep.network} · chain ${S.dep.chainId}`;

  if (window.ethereum) $("connect-injected").hidden = false;
  if (S.cfg.local && S.cfg.devAccounts.length) {
    $("dev-picker").hidden = false;
    for (const a of S.cfg.devAccounts) {
      const o = document.createElement("option");
      o.value = a.address;
      o.textContent = `#${a.index} ${shortAddr(a.address)}${a.note ? " (" + a.note + ")" : ""}`;
      $("dev-account").appendChild(o);
    }
    document.querySelectorAll(".local-only").forEach((el) => (el.hidden = false));
  }
  if (!window.ethereum && !S.cfg.local) banner("No wallet found: install a browser wallet to trade.");

  $("connect-injected").onclick = connectInjected;
  $("dev-account").onchange = (e) => useDevAccount(e.target.value);
  $("mint").onclick = () => act("mint", mint);
  $("deposit").onclick = () => act("deposit", deposit);
  $("withdraw").onclick = () => act("withdraw", withdraw);
  $("trade").onsubmit = (e) => { e.preventDefault(); act("t-submit", placeOrder); };
  $("t-type").onchange = onTypeChange;
  for (const id of ["t-market", "t-side", "t-size", "t-slip", "t-trigger", "t-type"]) $(id).addEventListener("input", () => void updateQuote());
  onTypeChange();
  await refresh();
  setInterval(() => void refresh(), 1500);
}

async function connectInjected() {
  try {
    const bp = new BrowserProvider(window.ethereum);
    await bp.send("eth_requestAccounts", []);
    const net = await bp.getNetwork();
    if (Number(net.chainId) !== Number(S.dep.chainId)) {
      try {
        await bp.send("wallet_switchEthereumChain", [{ chainId: "0x" + Number(S.dep.chainId).toString(16) }]);
      } catch {
        banner(`Switch your wallet to chain ${S.dep.chainId}.`);
        return;
      }
    }
    setSigner(await new BrowserProvider(window.ethereum).getSigner(), "wallet");
    $("dev-account").value = "";
  } catch (e) {
    banner(errMsg(e));
  }
}

function useDevAccount(address) {
  const a = S.cfg.devAccounts.find((x) => x.address === address);
  if (!a) return setSigner(null);
  setSigner(new Wallet(a.privateKey, S.provider), `dev #${a.index}`);
}

async function setSigner(signer, label) {
  S.signer = signer;
  S.address = signer ? await signer.getAddress() : null;
  S.orders.clear();
  S.history = [];
  S.scannedTo = -1;
  $("account").textContent = S.address ? `${label} ${S.address}` : "";
  banner("");
  await refresh();
}

// ----------------------------------------------------------------------------------------- actions
async function act(buttonId, fn) {
  const b = $(buttonId);
  if (!S.signer) return banner("Pick a dev account or connect a wallet first.");
  b.disabled = true;
  try {
    await fn();
  } catch (e) {
    banner(errMsg(e));
  } finally {
    b.disabled = false;
    log("");
    void refresh();
  }
}

function amountUnits() {
  const v = $("amount").value;
  if (!(Number(v) > 0)) throw new Error("Enter a positive amount.");
  return parseUnits(v, S.decimals);
}

async function mint() {
  const amt = amountUnits();
  log("minting…");
  await (await S.token.connect(S.signer).mint(S.address, amt)).wait();
  banner(`Minted ${fmtNum(tok(amt), 2)} test USDC.`, "ok");
}

async function deposit() {
  const amt = amountUnits();
  const allowance = await S.token.allowance(S.address, S.dep.contracts.vault);
  if (allowance < amt) {
    log("approving…");
    await (await S.token.connect(S.signer).approve(S.dep.contracts.vault, MaxUint256)).wait();
  }
  log("depositing…");
  await (await S.vault.connect(S.signer).deposit(S.address, amt)).wait();
  banner(`Deposited ${fmtNum(tok(amt), 2)} USDC.`, "ok");
}

async function withdraw() {
  const amt = amountUnits();
  await (await S.vault.connect(S.signer).withdraw(amt, S.address)).wait();
  banner(`Withdrew ${fmtNum(tok(amt), 2)} USDC.`, "ok");
}

function onTypeChange() {
  const t = $("t-type").value;
  document.querySelector(".cond").hidden = t === "market";
  $("t-reduce").checked = t === "stop" || t === "tp";
  const m = S.prices.get(Number($("t-market").value));
  if (t !== "market" && m && !$("t-trigger").value) $("t-trigger").value = d18(m).toFixed(2);
  void updateQuote();
}

/** Trigger direction of a conditional order: limit buys fire below, limit sells above; a stop-loss closing a
 * long (sell) fires below, closing a short (buy) above; take-profits the other way round. */
function triggerAbove(type, side) {
  const dir = $("t-dir").value;
  if (dir !== "auto") return dir === "above";
  const sell = side === "sell";
  if (type === "limit") return sell;
  if (type === "stop") return !sell;
  return sell; // take-profit
}

function orderInputs() {
  const marketId = Number($("t-market").value);
  const side = $("t-side").value;
  const size = $("t-size").value;
  if (!(Number(size) > 0)) throw new Error("Enter a positive size.");
  const slip = Number($("t-slip").value);
  if (!(slip >= 0)) throw new Error("Slippage must be ≥ 0.");
  const abs = parseUnits(size, 18);
  const sizeDelta = side === "buy" ? abs : -abs;
  const slipBps = BigInt(Math.round(slip * 100));
  const withSlip = (p) => (side === "buy" ? (p * (10000n + slipBps)) / 10000n : (p * (10000n - slipBps)) / 10000n);
  return { marketId, side, sizeDelta, withSlip, type: $("t-type").value };
}

async function updateQuote() {
  try {
    const o = orderInputs();
    const [fill, fee] = await S.lens.quote(o.marketId, o.sizeDelta);
    let text = `Quote: fill ≈ ${fmtUsd(d18(fill), priceDp(d18(fill)))} · fee ≈ ${fmtUsd(d18(fee))}`;
    if (o.type === "market") text += ` · acceptable ${fmtUsd(d18(o.withSlip(fill)), priceDp(d18(fill)))}`;
    else {
      const trig = Number($("t-trigger").value);
      if (trig > 0) text += ` · fires when price ${triggerAbove(o.type, o.side) ? "≥" : "≤"} ${fmtUsd(trig)}`;
    }
    text += ` · keeper fee ${formatUnits(S.minFee, 18)} ETH`;
    $("t-quote").textContent = text;
  } catch (e) {
    $("t-quote").textContent = errMsg(e);
  }
}

async function placeOrder() {
  const o = orderInputs();
  const ch = S.ch.connect(S.signer);
  let tx;
  if (o.type === "market") {
    const [fill] = await S.lens.quote(o.marketId, o.sizeDelta);
    tx = await ch.commitOrder(o.marketId, o.sizeDelta, o.withSlip(fill), { value: S.minFee });
  } else {
    const trig = $("t-trigger").value;
    if (!(Number(trig) > 0)) throw new Error("Enter a trigger price.");
    const trigger = parseUnits(trig, 18);
    const hours = Number($("t-expiry").value);
    if (!(hours > 0)) throw new Error("Enter an expiry.");
    const now = (await S.provider.getBlock("latest")).timestamp;
    const expiresAt = BigInt(now + Math.round(hours * 3600));
    tx = await ch.commitConditionalOrder(o.marketId, o.sizeDelta, o.withSlip(trigger), trigger, triggerAbove(o.type, o.side), $("t-reduce").checked, expiresAt, { value: S.minFee });
  }
  log("committing…");
  const rc = await tx.wait();
  const ev = rc.logs.map((l) => { try { return S.ch.interface.parseLog(l); } catch { return null; } }).find((x) => x?.name === "OrderCommitted");
  banner(`Order #${ev ? ev.args.orderId : "?"} committed: a keeper executes it after the minimum delay${o.type === "market" ? "" : " once triggered"}.`, "info");
}

async function cancel(id) {
  if (!S.signer) return;
  try {
    await (await S.ch.connect(S.signer).cancelOrder(id)).wait();
    banner(`Order #${id} cancelled.`, "ok");
  } catch (e) {
    banner(errMsg(e));
  }
  void refresh();
}

// ----------------------------------------------------------------------------------------- refresh
async function refresh() {
  if (S.busy || !S.dep) return;
  S.busy = true;
  try {
    const block = await S.provider.getBlock("latest");
    S.blockTime = block.timestamp;
    $("block").textContent = `block ${block.number} · ${new Date(block.timestamp * 1000).toLocaleTimeString()}`;
    await refreshMarkets();
    if (S.address) {
      await Promise.all([refreshAccount(), refreshOrders(block.number)]);
      await refreshPositions();
    }
  } catch (e) {
    log(`refresh: ${errMsg(e)}`);
  } finally {
    S.busy = false;
  }
}

async function refreshMarkets() {
  const rows = await Promise.all(
    S.markets.map(async (m) => {
      const [price, ratios, lev, funding, risk] = await Promise.all([
        S.rm.priceD18(m.id).catch(() => null),
        S.rm.ratios(m.id),
        S.rm.maxLeverageD18(m.id),
        S.lens.fundingRatePerDayD18(m.id).catch(() => 0n),
        S.rm.marketRisk(m.id, false).catch(() => null),
      ]);
      if (price !== null) S.prices.set(m.id, price);
      const p = price === null ? null : d18(price);
      const ro = risk && risk.breakers !== 0n ? `<span class="short" title="breakers ${risk.breakers}">reduce-only</span>` : "";
      return `<tr data-market="${m.symbol}"><td>${m.symbol}</td><td>${p === null ? "stale" : fmtUsd(p, priceDp(p))}</td><td>${pct(ratios.sigmaD18, 1)}</td><td>${pct(ratios.mmrD18)}</td><td>${pct(ratios.imrD18)}</td><td>${d18(lev).toFixed(1)}×</td><td>${pct(funding, 4)}</td><td>${ro}</td></tr>`;
    }),
  );
  $("markets").tBodies[0].innerHTML = rows.join("");
}

async function refreshAccount() {
  const [s, bal] = await Promise.all([S.ch.accountSummary(S.address), S.token.balanceOf(S.address)]);
  $("wallet-usdc").textContent = fmtUsd(tok(bal));
  $("collateral").textContent = fmtUsd(tok(s.collateral));
  $("upnl").textContent = fmtUsd(d18(s.unrealizedPnlD18));
  $("equity").textContent = fmtUsd(d18(s.equityD18));
  $("im").textContent = fmtUsd(d18(s.initialRequirementD18));
  $("mm").textContent = fmtUsd(d18(s.maintenanceRequirementD18));
  $("free").textContent = fmtUsd(tok(s.freeCollateral));
  $("health").textContent = s.healthD18 === MaxUint256 || s.maintenanceRequirementD18 === 0n ? "∞ (no positions)" : d18(s.healthD18).toFixed(3) + "×";
  const st = Number(s.status);
  let text = STATUS[st] ?? String(st);
  if (st === 2 && s.marginCallDeadline > 0n) {
    const left = Math.max(0, Number(s.marginCallDeadline) - Math.floor(Date.now() / 1000));
    text += ` — ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left to top up or reduce`;
  }
  $("status").textContent = text;
  $("status").className = `st-${st}`;
}

async function refreshPositions() {
  const rows = [];
  for (const m of S.markets) {
    const p = await S.ch.position(S.address, m.id);
    if (p.sizeD18 === 0n) continue;
    const [be, liq] = await Promise.all([
      S.lens.breakEvenPriceD18(S.address, m.id).catch(() => 0n),
      S.lens.liquidationPriceD18(S.address, m.id).catch(() => 0n),
    ]);
    const size = d18(p.sizeD18);
    const mark = S.prices.has(m.id) ? d18(S.prices.get(m.id)) : 0;
    const cls = size > 0 ? "long" : "short";
    rows.push(
      `<tr data-market="${m.symbol}"><td>${m.symbol}</td><td class="${cls} size">${size > 0 ? "+" : ""}${fmtNum(size)}</td><td>${fmtUsd(Math.abs(size) * mark)}</td><td>${be ? fmtUsd(d18(be), priceDp(d18(be))) : "—"}</td><td>${mark ? fmtUsd(mark, priceDp(mark)) : "—"}</td><td class="liq">${liq ? fmtUsd(d18(liq), priceDp(d18(liq))) : '<span class="muted" title="equity covers maintenance at any price">none</span>'}</td></tr>`,
    );
  }
  $("positions").tBodies[0].innerHTML = rows.length ? rows.join("") : `<tr class="empty"><td colspan="6">No positions</td></tr>`;
}

/** Pending orders from the account's OrderCommitted / OrderExecuted / OrderCancelled events, scanned
 * incrementally from the deployment block; triggers from OrderTriggerSet. */
async function refreshOrders(latest) {
  const addr = S.address;
  const from = S.scannedTo < 0 ? S.dep.deploymentBlock ?? 0 : S.scannedTo + 1;
  if (from <= latest) {
    const ch = S.ch;
    const [committed, executed, cancelled] = await Promise.all([
      ch.queryFilter(ch.filters.OrderCommitted(null, S.address), from, latest),
      ch.queryFilter(ch.filters.OrderExecuted(null, S.address), from, latest),
      ch.queryFilter(ch.filters.OrderCancelled(null, S.address), from, latest),
    ]);
    if (addr !== S.address) return; // the account changed meanwhile
    for (const e of committed) {
      const a = e.args;
      S.orders.set(a.orderId, { id: a.orderId, marketId: Number(a.marketId), sizeDeltaD18: a.sizeDeltaD18, acceptable: a.acceptablePriceD18, expiresAt: Number(a.expiresAt), executableAt: Number(a.executableAt), state: "pending" });
    }
    if (committed.length) {
      const trig = await ch.queryFilter(ch.filters.OrderTriggerSet(), from, latest);
      for (const e of trig) {
        const o = S.orders.get(e.args.orderId);
        if (o) Object.assign(o, { trigger: e.args.triggerPriceD18, above: e.args.triggerAbove, reduceOnly: e.args.reduceOnly, expiresAt: Number(e.args.expiresAt) });
      }
    }
    const sym = (id) => S.markets.find((m) => m.id === id)?.symbol ?? `#${id}`;
    for (const e of executed) {
      const o = S.orders.get(e.args.orderId);
      if (o) o.state = "filled";
      S.history.unshift(`#${e.args.orderId} ${o ? sym(o.marketId) + " " + fmtNum(d18(o.sizeDeltaD18)) : ""} filled at ${fmtUsd(d18(e.args.fillPriceD18))}`);
    }
    for (const e of cancelled) {
      const o = S.orders.get(e.args.orderId);
      if (o) o.state = "cancelled";
      let why = "cancelled";
      if (e.args.reason && e.args.reason !== "0x") {
        try { why = `cancelled at execution: ${ch.interface.parseError(e.args.reason)?.name}`; } catch { why = "cancelled at execution"; }
      }
      S.history.unshift(`#${e.args.orderId} ${o ? sym(o.marketId) : ""} ${why}`);
    }
    S.scannedTo = latest;
    $("history").innerHTML = S.history.slice(0, 30).map((h) => `<li>${h}</li>`).join("");
  }
  const pending = [...S.orders.values()].filter((o) => o.state === "pending").sort((a, b) => (a.id < b.id ? -1 : 1));
  const now = Math.max(S.blockTime, Math.floor(Date.now() / 1000));
  const tbody = $("orders").tBodies[0];
  if (!pending.length) {
    tbody.innerHTML = `<tr class="empty"><td colspan="8">No pending orders</td></tr>`;
    return;
  }
  tbody.innerHTML = "";
  for (const o of pending) {
    const sym = S.markets.find((m) => m.id === o.marketId)?.symbol ?? `#${o.marketId}`;
    const size = d18(o.sizeDeltaD18);
    const cond = o.trigger !== undefined;
    const kind = cond ? `${o.reduceOnly ? "reduce-only " : ""}conditional` : now < o.executableAt ? "market (waiting delay)" : "market (awaiting keeper)";
    const left = o.expiresAt - now;
    const exp = left > 0 ? (left > 3600 ? `${(left / 3600).toFixed(1)} h` : `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`) : "expired";
    const tr = document.createElement("tr");
    tr.dataset.order = String(o.id);
    tr.innerHTML = `<td>${o.id}</td><td>${sym}</td><td>${kind}</td><td class="${size > 0 ? "long" : "short"}">${size > 0 ? "+" : ""}${fmtNum(size)}</td><td>${fmtUsd(d18(o.acceptable))}</td><td>${cond ? (o.above ? "≥ " : "≤ ") + fmtUsd(d18(o.trigger)) : "—"}</td><td>${exp}</td><td></td>`;
    if (cond || left <= 0) {
      const b = document.createElement("button");
      b.className = "small secondary";
      b.textContent = "Cancel";
      b.onclick = () => cancel(o.id);
      tr.lastChild.appendChild(b);
    }
    tbody.appendChild(tr);
  }
}

init().catch((e) => banner(`Cannot start: ${errMsg(e)}`));
