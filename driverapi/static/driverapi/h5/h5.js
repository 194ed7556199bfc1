/* The drivers' H5 pages: each page (body[data-page]) calls the driver API (/api/v1/) with
   the token kept in localStorage; a 401 sends the driver through WeChat login again.
   No inline script, no CDN: this file is the whole client (CSP script-src 'self'). */
"use strict";

const TOKEN_KEY = "cn.driver.token";
const NEXT_KEY = "cn.driver.next";
const API = "/api/v1/";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function notice(message, ok) {
  const box = document.getElementById("notice");
  box.textContent = message || "";
  box.hidden = !message;
  box.classList.toggle("ok", !!ok);
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || "网络错误，请重试");
    this.status = status;
    this.code = (body && body.code) || "network";
    this.body = body;
  }
}

function login() {
  sessionStorage.setItem(NEXT_KEY, location.pathname + location.search);
  location.href = "/h5/login/";
}

async function api(path, { method = "GET", body, headers = {}, quiet404 = false } = {}) {
  const token = localStorage.getItem(TOKEN_KEY);
  const init = { method, headers: { "Accept-Language": "zh-hans", ...headers } };
  if (token) init.headers.Authorization = "Bearer " + token;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (e) {
    throw new ApiError(0, null);
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (response.status === 401) {
    localStorage.removeItem(TOKEN_KEY);
    login();
    throw new ApiError(401, data);
  }
  if (!response.ok) {
    if (!(quiet404 && response.status === 404)) notice(new ApiError(response.status, data).message);
    throw new ApiError(response.status, data);
  }
  return data;
}

const yuan = (v) => (v === null || v === undefined ? "—" : "¥" + v);
const km = (m) => (m < 1000 ? m + " 米" : (m / 1000).toFixed(1) + " 公里");
function duration(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} 小时 ${m} 分` : `${m} 分 ${s % 60} 秒`;
}
const time = (iso) => (iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false }) : "—");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- pages ---------------------------------------------------------------------------

const pages = {};

pages.login = async () => {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  if (!code) {
    const { url } = await api("auth/wechat/authorize/");
    location.href = url;
    return;
  }
  const answer = await api("auth/wechat/", { method: "POST", body: { code } });
  localStorage.setItem(TOKEN_KEY, answer.token);
  const next = sessionStorage.getItem(NEXT_KEY) || "/h5/";
  sessionStorage.removeItem(NEXT_KEY);
  location.replace(next.startsWith("/h5/") && !next.startsWith("/h5/login") ? next : "/h5/");
};

function position() {
  const params = new URLSearchParams(location.search);
  if (params.get("lat") && params.get("lng")) {
    return Promise.resolve({ lat: params.get("lat"), lng: params.get("lng"), how: "link" });
  }
  const fallback = { lat: document.body.dataset.lat, lng: document.body.dataset.lng, how: "default" };
  if (!navigator.geolocation) return Promise.resolve(fallback);
  return new Promise((resolve) => {
    navigator.geolocation.getCurrentPosition(
      (p) => resolve({ lat: p.coords.latitude.toFixed(6), lng: p.coords.longitude.toFixed(6), how: "gps" }),
      () => resolve(fallback),
      { timeout: 4000, maximumAge: 60000 },
    );
  });
}

pages.stations = async () => {
  const form = document.getElementById("filters");
  const list = document.getElementById("stations");
  const where = await position();
  document.getElementById("where").textContent =
    where.how === "gps" ? "按距您的距离排序" : "未获得定位，按默认位置排序";
  async function load() {
    const query = new URLSearchParams({ lat: where.lat, lng: where.lng, radius: 20000 });
    const data = new FormData(form);
    if (data.get("current_type")) query.set("current_type", data.get("current_type"));
    if (data.get("free_only")) query.set("free_only", "true");
    const page = await api("stations/nearby/?" + query);
    list.replaceChildren(
      ...page.results.map((s) =>
        el("li", {}, el("a", { href: `/h5/stations/${s.id}/` },
          el("div", { class: "title" }, s.name),
          el("div", { class: "muted" }, km(s.distance_m), " · ", s.address),
          el("div", {}, s.connectors.map((c) =>
            el("span", { class: "tag" + (c.free ? " free" : "") },
              `${c.current_type === "DC" ? "快充" : "慢充"} 空闲 ${c.free}/${c.total}`))),
        )),
      ),
    );
    if (!page.results.length) list.append(el("li", {}, el("div", { class: "item muted" }, "附近没有符合条件的电站")));
  }
  form.addEventListener("change", load);
  await load();
};

function priceTable(rows, periodNow) {
  if (!rows.length) return el("p", { class: "muted" }, "暂无电价");
  return el("table", {},
    el("thead", {}, el("tr", {}, el("th", {}, "时段"), el("th", {}, ""),
      el("th", { class: "num" }, "电费"), el("th", { class: "num" }, "服务费"), el("th", { class: "num" }, "合计"))),
    el("tbody", {}, rows.map((r) =>
      el("tr", { class: r.period === periodNow ? "now" : null },
        el("td", {}, `${r.start}–${r.end}`), el("td", {}, r.period_label),
        el("td", { class: "num" }, r.electricity), el("td", { class: "num" }, r.service),
        el("td", { class: "num" }, r.total)))),
  );
}

pages.station = async () => {
  const s = await api(`stations/${document.body.dataset.id}/`);
  document.getElementById("station-head").replaceChildren(
    el("div", { class: "title" }, s.name),
    el("div", { class: "muted" }, s.address),
    el("div", {}, s.open_now ? "营业中" : "已打烊", " · 营业时间 ",
      s.opening_hours.length ? s.opening_hours.map((w) => `${w.opens}–${w.closes}`).join("、") : "24 小时"),
  );
  document.getElementById("connectors").replaceChildren(
    ...s.connectors.map((c) =>
      el("li", {}, el("a", { href: `/h5/connectors/${c.id}/` },
        el("span", { class: "tag " + c.state }, c.state_label),
        `${c.pile_code} · ${c.number} 号枪 · ${c.current_type === "DC" ? "直流" : "交流"} ${c.rated_power_kw || "—"} kW`))),
  );
  const p = s.prices_today;
  document.getElementById("prices").replaceChildren(
    el("h2", {}, "直流"), priceTable(p.dc, p.period_now), el("h2", {}, "交流"), priceTable(p.ac, p.period_now),
  );
};

pages.scan = async () => {
  const form = document.getElementById("scan-form");
  const params = new URLSearchParams(location.search);
  if (params.get("code")) return resolve(params.get("code"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    resolve(`${data.get("pile").trim()}-${data.get("number").trim()}`);
  });
  async function resolve(code) {
    try {
      const c = await api("connectors/scan/?" + new URLSearchParams({ code }), { quiet404: true });
      location.href = `/h5/connectors/${c.id}/`;
    } catch (e) {
      if (e.status === 404) notice("没有找到这把充电枪，请核对桩编号和枪号");
    }
  }
};

pages.connector = async () => {
  const id = document.body.dataset.id;
  const button = document.getElementById("start");
  const c = await api(`connectors/${id}/`);
  document.getElementById("connector").replaceChildren(
    el("div", { class: "title" }, c.station_name),
    el("div", {}, `${c.pile_code} · ${c.number} 号枪 · ${c.current_type === "DC" ? "直流" : "交流"} ${c.rated_power_kw || "—"} kW`),
    el("div", {}, el("span", { class: "tag " + c.state }, c.state_label), c.station_open_now ? "" : "电站已打烊"),
  );
  button.disabled = false;
  // One key per press of the button: a resend after a lost answer is the same start.
  let key = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "正在启动…";
    try {
      const start = await api(`connectors/${id}/start/`, { method: "POST", headers: { "Idempotency-Key": key } });
      location.href = `/h5/charge/?start=${start.id}`;
    } catch (e) {
      key = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
      button.disabled = false;
      button.textContent = "启动充电";
    }
  });
};

pages.charge = async () => {
  const box = document.getElementById("live");
  const stop = document.getElementById("stop");
  let current = null;
  stop.addEventListener("click", async () => {
    stop.disabled = true;
    stop.textContent = "正在结束…";
    try {
      await api(`sessions/${current.id}/stop/`, { method: "POST" });
      notice("已发送结束指令，正在等待充电桩结束充电…", true);
    } catch (e) {
      stop.disabled = false;
      stop.textContent = "结束充电";
    }
  });
  // Just started: the pile's answer comes after the 202; follow the start until the
  // session opens, and say plainly when the pile refused or did not answer.
  const startId = new URLSearchParams(location.search).get("start");
  for (let start = null; startId && (!start || ["starting", "accepted"].includes(start.state)); ) {
    try {
      start = await api(`starts/${startId}/`);
    } catch (e) {
      await sleep(2000);
      continue;
    }
    if (start.state === "charging") break;
    if (!["starting", "accepted"].includes(start.state)) {
      box.replaceChildren(
        el("div", { class: "failed", id: "start-failed" },
          el("div", { class: "title" }, "启动失败"), el("p", {}, start.message)),
        el("a", { class: "button big", href: `/h5/connectors/${start.connector_id}/` }, "重新启动"),
      );
      return;
    }
    box.replaceChildren(el("p", { class: "muted", id: "start-state" }, start.message));
    await sleep(1000);
  }
  for (let tries = 0; ; tries++) {
    let session = null;
    try {
      session = await api("sessions/current/", { quiet404: true });
    } catch (e) {
      if (e.status !== 404) { await sleep(3000); continue; }
    }
    if (session) {
      current = session;
      const live = session.live || {};
      box.replaceChildren(
        el("div", { class: "muted" }, `${session.station_name} · ${session.pile_code} · ${session.connector_number} 号枪`),
        el("div", { class: "big-figure", id: "energy" }, `${live.energy_kwh ?? "0.000"} 度`),
        el("dl", { class: "grid" },
          el("dt", {}, "功率"), el("dt", {}, "电量 SOC"),
          el("dd", { id: "power" }, live.power_kw ? live.power_kw + " kW" : "—"),
          el("dd", { id: "soc" }, live.soc !== null && live.soc !== undefined ? live.soc + "%" : "—"),
          el("dt", {}, "已充时长"), el("dt", {}, "预估金额"),
          el("dd", { id: "duration" }, duration(live.duration_s || 0)),
          el("dd", { id: "amount" }, yuan(live.amount_so_far))),
        el("div", { class: "muted" }, "订单号 ", session.order_no),
      );
      stop.hidden = false;
    } else if (current) {
      // It ended: the bill follows the pile's stop.
      location.href = `/h5/sessions/${current.id}/bill/`;
      return;
    } else if (tries > 20) {
      box.replaceChildren(el("p", { class: "muted" }, "当前没有进行中的充电。"),
        el("a", { href: "/h5/scan/" }, "扫码充电"));
      return;
    } else {
      box.replaceChildren(el("p", { class: "muted" }, "正在等待充电桩开始充电…"));
    }
    await sleep(3000);
  }
};

function billCard(b) {
  return [
    el("div", { class: "muted" }, b.station_name, " · 订单号 ", b.order_no),
    el("div", { class: "total", id: "total" }, yuan(b.total)),
    el("div", {}, el("span", { class: "tag", id: "bill-state" }, b.state_label)),
    el("dl", { class: "grid" },
      el("dt", {}, "电量"), el("dt", {}, "时长"),
      el("dd", {}, `${b.energy_kwh} 度`), el("dd", {}, duration(b.duration_s)),
      el("dt", {}, "电费"), el("dt", {}, "服务费"),
      el("dd", {}, yuan(b.electricity_fee)), el("dd", {}, yuan(b.service_fee))),
    el("div", { class: "muted" }, time(b.started_at), " — ", time(b.ended_at)),
    b.lines.length
      ? el("table", {},
          el("thead", {}, el("tr", {}, el("th", {}, "时段"), el("th", { class: "num" }, "电量"),
            el("th", { class: "num" }, "单价"), el("th", { class: "num" }, "金额"))),
          el("tbody", {}, b.lines.map((l) => el("tr", {},
            el("td", {}, l.period_label), el("td", { class: "num" }, l.energy_kwh),
            el("td", { class: "num" }, (Number(l.electricity_price) + Number(l.service_price)).toFixed(4)),
            el("td", { class: "num" }, (Number(l.electricity_fee) + Number(l.service_fee)).toFixed(2))))))
      : null,
  ];
}

pages.bill = async () => {
  const box = document.getElementById("bill");
  let billId = document.body.dataset.bill;
  const sessionId = document.body.dataset.session;
  for (let tries = 0; !billId && tries < 60; tries++) {
    const s = await api(`sessions/${sessionId}/`);
    billId = s.bill_id;
    if (!billId) await sleep(2000);
  }
  if (!billId) { box.replaceChildren(el("p", { class: "muted" }, "账单生成中，请稍后在“我的账单”查看。")); return; }
  box.replaceChildren(...billCard(await api(`bills/${billId}/`)));
};

pages.bills = async () => {
  const page = await api("bills/?limit=50");
  document.getElementById("bills").replaceChildren(
    ...page.results.map((b) => el("li", {}, el("a", { href: `/h5/bills/${b.id}/` },
      el("div", { class: "title" }, b.station_name, " ", yuan(b.total)),
      el("div", { class: "muted" }, time(b.ended_at), " · ", `${b.energy_kwh} 度 · `, b.state_label)))),
  );
  if (!page.results.length) document.getElementById("bills").append(el("li", {}, el("div", { class: "item muted" }, "还没有账单")));
};

pages.me = async () => {
  const me = await api("me/");
  document.getElementById("me").replaceChildren(
    el("div", { class: "title" }, me.nickname || "车主"),
    el("div", { class: "muted" }, me.phone_bound ? "手机号 " + me.phone : "未绑定手机号", " · ", me.operator),
  );
  const form = document.getElementById("phone-form");
  form.hidden = me.phone_bound;
  document.getElementById("send-code").addEventListener("click", async () => {
    const phone = new FormData(form).get("phone");
    await api("auth/phone/code/", { method: "POST", body: { phone } });
    notice("验证码已发送", true);
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const answer = await api("auth/phone/", { method: "POST", body: { phone: data.get("phone"), code: data.get("code") } });
    localStorage.setItem(TOKEN_KEY, answer.token);
    location.reload();
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await api("auth/logout/", { method: "POST" });
    localStorage.removeItem(TOKEN_KEY);
    location.href = "/h5/";
  });
};

// --- wallet: balance, recharge (WeChat Pay JSAPI; the local fake in development),
// balance refund, ledger, invoices (driverapi/wallet.py) --------------------------------

function payInWeChat(jsapi) {
  return new Promise((resolve, reject) => {
    window.WeixinJSBridge.invoke("getBrandWCPayRequest", jsapi, (r) =>
      r.err_msg === "get_brand_wcpay_request:ok" ? resolve() : reject(new Error("支付未完成")));
  });
}

async function recharge(amount) {
  const started = await api("wallet/recharges/", { method: "POST", body: { amount } });
  const fake = document.body.dataset.fakepay;
  if (window.WeixinJSBridge) await payInWeChat(started.jsapi);
  else if (fake) {
    // Development: the local fake WeChat Pay plays the driver confirming the payment.
    const paid = await fetch(`${fake}/fake/pay/${started.recharge.out_trade_no}`, { method: "POST" });
    if (!paid.ok) throw new Error("模拟支付失败");
  } else throw new Error("请在微信中打开本页面完成支付");
  for (let tries = 0; tries < 20; tries++) {
    const r = await api(`wallet/recharges/${started.recharge.id}/`);
    if (r.state === "paid") return r;
    if (r.state !== "pending") throw new Error("充值未成功：" + r.state_label);
    await sleep(1000);
  }
  return null;
}

function money(entry) {
  const out = entry.amount.startsWith("-");
  return el("span", { class: out ? "amount-out" : "amount-in" }, (out ? "" : "+") + entry.amount);
}

pages.wallet = async () => {
  const form = document.getElementById("recharge-form");
  const refundForm = document.getElementById("refund-form");
  async function show() {
    const [wallet, ledger, refunds] = await Promise.all([
      api("wallet/"), api("wallet/ledger/?limit=20"), api("wallet/refunds/?limit=5"),
    ]);
    document.getElementById("balance").textContent = wallet.balance;
    document.getElementById("refundable").textContent = `可退 ${yuan(wallet.refundable)}`;
    document.getElementById("ledger").replaceChildren(...ledger.results.map((e) =>
      el("li", {}, el("div", { class: "item" }, el("div", {}, e.kind_label, " ", money(e)),
        el("div", { class: "muted" }, time(e.created_at), e.order_no ? ` · ${e.order_no}` : "",
          ` · 余额 ${e.balance_after}`)))));
    if (!ledger.results.length) document.getElementById("ledger").append(el("li", {}, el("div", { class: "item muted" }, "还没有收支")));
    document.getElementById("refunds").replaceChildren(...refunds.results.map((r) =>
      el("li", {}, el("div", { class: "item" }, `${yuan(r.amount)} · ${r.state_label}`,
        r.rejection_reason ? el("div", { class: "muted" }, r.rejection_reason) : null))));
  }
  document.getElementById("amounts").addEventListener("click", (ev) => {
    if (ev.target.dataset.amount) form.amount.value = ev.target.dataset.amount;
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const paid = await recharge(form.amount.value);
      notice(paid ? `充值成功：${yuan(paid.amount)} 已到账` : "支付结果确认中，到账后余额会更新", true);
      form.reset();
      await show();
    } catch (e) {
      if (!(e instanceof ApiError)) notice(e.message);
    } finally {
      button.disabled = false;
    }
  });
  refundForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("wallet/refunds/", { method: "POST",
        body: { amount: refundForm.amount.value, reason: refundForm.reason.value } });
      notice("退款申请已提交，审核后原路退回", true);
      refundForm.reset();
      await show();
    } catch (e) { /* the notice says why */ }
  });
  await show();
};

pages.invoices = async () => {
  const form = document.getElementById("invoice-form");
  async function show() {
    const [invoices, recharges, bills] = await Promise.all([
      api("invoices/?limit=50"), api("wallet/recharges/?state=paid&limit=50"), api("bills/?limit=50"),
    ]);
    const taken = new Set(invoices.results.filter((i) => i.state !== "rejected")
      .flatMap((i) => [...i.recharge_ids.map((x) => "r" + x), ...i.bill_ids.map((x) => "b" + x)]));
    document.getElementById("invoices").replaceChildren(...invoices.results.map((i) =>
      el("li", {}, el("div", { class: "item" },
        el("div", { class: "title" }, `${i.title} · ${yuan(i.amount)}`),
        el("div", { class: "muted" }, `${i.state_label} · ${time(i.created_at)}`,
          i.rejection_reason ? ` · ${i.rejection_reason}` : ""),
        i.state === "issued" ? el("button", { type: "button", onclick: async () => {
          const link = await api(`invoices/${i.id}/link/`, { method: "POST" });
          location.href = link.url;
        } }, "下载 PDF") : null))));
    const choice = (key, label) => el("li", {}, el("label", { class: "choice" },
      el("input", { type: "checkbox", name: "item", value: key }), label));
    document.getElementById("choices").replaceChildren(
      ...recharges.results.filter((r) => !taken.has("r" + r.id))
        .map((r) => choice("r" + r.id, `充值 ${yuan(r.amount)} · ${time(r.paid_at)}`)),
      ...bills.results.filter((b) => b.state === "paid" && !taken.has("b" + b.id))
        .map((b) => choice("b" + b.id, `账单 ${yuan(b.total)} · ${time(b.ended_at)}`)));
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const keys = [...form.querySelectorAll("input[name=item]:checked")].map((x) => x.value);
    try {
      await api("invoices/", { method: "POST", body: {
        title: form.title.value, tax_number: form.tax_number.value, email: form.email.value,
        recharge_ids: keys.filter((k) => k[0] === "r").map((k) => +k.slice(1)),
        bill_ids: keys.filter((k) => k[0] === "b").map((k) => +k.slice(1)),
      } });
      notice("开票申请已提交", true);
      form.reset();
      await show();
    } catch (e) { /* the notice says why */ }
  });
  await show();
};

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page !== "login" && !localStorage.getItem(TOKEN_KEY)) return login();
  (pages[page] || (() => {}))().catch((e) => { if (!(e instanceof ApiError)) notice("页面出错：" + e.message); });
});
