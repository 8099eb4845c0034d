// wallet-auth.js: the browser client of asgi-wallet-auth. One ES module, no build step, no
// dependency. It signs in with an EIP-1193 wallet (EIP-4361 message, personal_sign), then keeps
// the session: the bearer token in memory only, or, where the service sets cookies, the CSRF
// token that goes with the HttpOnly cookie.
//
//   import { WalletAuthClient, discoverWallets } from "https://auth.example.com/wallet-auth.js";
//   const auth = new WalletAuthClient("https://auth.example.com");
//   const [wallet] = await discoverWallets();
//   await auth.signIn(wallet.provider);
//   const me = await auth.fetchWithAuth("https://auth.example.com/me");

/** A refusal by the service: the envelope's `code` and `msg`, and the HTTP `status`. */
export class WalletAuthError extends Error {
  constructor(code, msg, status) {
    super(`${msg} (code ${code})`);
    this.name = "WalletAuthError";
    this.code = code;
    this.msg = msg;
    this.status = status;
  }
}

/**
 * A failure on the wallet's side. `reason` is one of "no-wallet", "no-account", "rejected" (the
 * user said no: EIP-1193 error 4001), "wrong-chain" (see `chainId` and `accepted`) or "wallet".
 */
export class WalletError extends Error {
  constructor(reason, message, details = {}) {
    super(message);
    this.name = "WalletError";
    this.reason = reason;
    Object.assign(this, details);
  }
}

// -- Keccak-256, for EIP-55 checksummed addresses (the message must carry that form) ----------

const MASK = (1n << 64n) - 1n;
// The round constants and rotation offsets are generated as the Keccak reference defines them,
// so no table of magic numbers can hold a typo.
const ROUND_CONSTANTS = (() => {
  const constants = [];
  let lfsr = 1;
  for (let round = 0; round < 24; round++) {
    let constant = 0n;
    for (let j = 0; j < 7; j++) {
      if (lfsr & 1) constant ^= 1n << BigInt((1 << j) - 1);
      lfsr = lfsr & 0x80 ? ((lfsr << 1) ^ 0x71) & 0xff : (lfsr << 1) & 0xff;
    }
    constants.push(constant);
  }
  return constants;
})();
const ROTATIONS = (() => {
  const offsets = new Array(25).fill(0);
  let x = 1;
  let y = 0;
  for (let t = 0; t < 24; t++) {
    offsets[x + 5 * y] = (((t + 1) * (t + 2)) / 2) % 64;
    [x, y] = [y, (2 * x + 3 * y) % 5];
  }
  return offsets;
})();

const rotl = (v, n) => (n === 0 ? v : ((v << BigInt(n)) | (v >> BigInt(64 - n))) & MASK);

function permute(state) {
  const b = new Array(25);
  for (let round = 0; round < 24; round++) {
    const c = [0, 1, 2, 3, 4].map(
      (x) => state[x] ^ state[x + 5] ^ state[x + 10] ^ state[x + 15] ^ state[x + 20],
    );
    for (let x = 0; x < 5; x++) {
      const d = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1);
      for (let y = 0; y < 25; y += 5) state[x + y] ^= d;
    }
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) {
        b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(state[x + 5 * y], ROTATIONS[x + 5 * y]);
      }
    }
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 25; y += 5) {
        state[x + y] = b[x + y] ^ (~b[((x + 1) % 5) + y] & MASK & b[((x + 2) % 5) + y]);
      }
    }
    state[0] ^= ROUND_CONSTANTS[round];
  }
}

/** Keccak-256 (Ethereum's, not SHA3-256) of a Uint8Array. */
export function keccak256(bytes) {
  const rate = 136;
  const padded = new Uint8Array(Math.floor(bytes.length / rate + 1) * rate);
  padded.set(bytes);
  padded[bytes.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const state = new Array(25).fill(0n);
  for (let offset = 0; offset < padded.length; offset += rate) {
    for (let i = 0; i < rate / 8; i++) {
      let lane = 0n;
      for (let k = 7; k >= 0; k--) lane = (lane << 8n) | BigInt(padded[offset + 8 * i + k]);
      state[i] ^= lane;
    }
    permute(state);
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 4; i++) {
    let lane = state[i];
    for (let k = 0; k < 8; k++) {
      out[8 * i + k] = Number(lane & 0xffn);
      lane >>= 8n;
    }
  }
  return out;
}

/** The EIP-55 form of an address (wallets often hand out lowercase ones). */
export function toChecksumAddress(address) {
  if (typeof address !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(address)) {
    throw new WalletError("no-account", "the wallet gave an address that is not 0x + 40 hex");
  }
  const lower = address.slice(2).toLowerCase();
  const hash = keccak256(new TextEncoder().encode(lower));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const nibble = (hash[i >> 1] >> (i % 2 ? 0 : 4)) & 0xf;
    out += nibble >= 8 ? lower[i].toUpperCase() : lower[i];
  }
  return out;
}

// -- the EIP-4361 message -----------------------------------------------------------------------

/** RFC 3339 in UTC with milliseconds, as the service writes it. */
export const rfc3339 = (ms) => new Date(ms).toISOString();

/** The text of an EIP-4361 message: exactly what the wallet shows and signs. */
export function siweMessage(fields) {
  const lines = [`${fields.domain} wants you to sign in with your Ethereum account:`, fields.address, ""];
  if (fields.statement) lines.push(fields.statement, "");
  lines.push(
    `URI: ${fields.uri}`,
    "Version: 1",
    `Chain ID: ${fields.chainId}`,
    `Nonce: ${fields.nonce}`,
    `Issued At: ${fields.issuedAt}`,
  );
  if (fields.expirationTime) lines.push(`Expiration Time: ${fields.expirationTime}`);
  return lines.join("\n");
}

const utf8Hex = (text) =>
  "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");

async function ask(provider, method, params) {
  try {
    return await provider.request(params === undefined ? { method } : { method, params });
  } catch (error) {
    if (error && error.code === 4001) {
      throw new WalletError("rejected", "You rejected the request in your wallet; nothing was signed.", {
        code: 4001,
      });
    }
    const text = (error && error.message) || String(error);
    throw new WalletError("wallet", `The wallet failed: ${text}`, { code: error && error.code });
  }
}

// -- finding wallets ------------------------------------------------------------------------------

/**
 * The wallets the page can use: every EIP-6963 announcement within `timeout` ms, else
 * `window.ethereum` alone. Each is `{info: {uuid, name, icon, rdns}, provider}`.
 */
export function discoverWallets(timeout = 250) {
  return new Promise((resolve) => {
    const found = new Map();
    const announced = (event) => {
      const detail = event.detail;
      if (detail && detail.info && detail.info.uuid && detail.provider) {
        found.set(detail.info.uuid, { info: detail.info, provider: detail.provider });
      }
    };
    window.addEventListener("eip6963:announceProvider", announced);
    window.dispatchEvent(new Event("eip6963:requestProvider"));
    setTimeout(() => {
      window.removeEventListener("eip6963:announceProvider", announced);
      const wallets = [...found.values()];
      if (!wallets.length && window.ethereum && typeof window.ethereum.request === "function") {
        const info = { uuid: "window.ethereum", name: "Browser wallet", icon: "", rdns: "" };
        wallets.push({ info, provider: window.ethereum });
      }
      resolve(wallets);
    }, timeout);
  });
}

// -- the client -----------------------------------------------------------------------------------

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/** One service's sessions: `signIn`, `fetchWithAuth`, `refresh`, `signOut`. */
export class WalletAuthClient {
  /** `baseUrl`: where the login routes are ("" for this page's origin, "https://auth.example.com"). */
  constructor(baseUrl = "", { fetch: fetchImpl } = {}) {
    this.baseUrl = String(baseUrl).replace(/\/+$/, "");
    this._fetch = fetchImpl || globalThis.fetch.bind(globalThis);
    this._info = null;
    this._offset = 0; // the service's clock minus ours, in ms
    /** `{address, userid, chainId, expiresAt, transport}` while signed in, else null. */
    this.session = null;
    this._token = null; // bearer mode: kept in memory only, never in storage
    this._csrf = null; // cookie mode: the CSRF token of the HttpOnly cookie's session
  }

  /** What the service accepts (`GET /siwe`): domain, uri, chains, statement, lifetimes. */
  async info() {
    if (!this._info) {
      const sent = Date.now();
      const info = await this._call("GET", "/siwe", undefined, "omit");
      this._offset = info.now * 1000 - (sent + Date.now()) / 2;
      this._info = info;
    }
    return this._info;
  }

  /** Sign in with an EIP-1193 provider; the new `session`. */
  async signIn(provider, { statement } = {}) {
    if (!provider || typeof provider.request !== "function") {
      throw new WalletError("no-wallet", "No wallet found: install a browser wallet and reload the page.");
    }
    const info = await this.info();
    const accounts = await ask(provider, "eth_requestAccounts");
    if (!Array.isArray(accounts) || !accounts.length) {
      throw new WalletError("no-account", "The wallet shared no account.");
    }
    const address = toChecksumAddress(accounts[0]);
    const chainId = Number.parseInt(await ask(provider, "eth_chainId"), 16);
    const eth = info.chains && info.chains.eth;
    const accepted = eth ? eth.chain_ids : [];
    if (!eth || (accepted && !accepted.includes(chainId))) {
      const names = accepted && accepted.length ? accepted.join(", ") : "none";
      throw new WalletError(
        "wrong-chain",
        `Your wallet is on chain ${chainId}; this service accepts chain ${names}. ` +
          "Switch networks in your wallet and try again.",
        { chainId, accepted },
      );
    }
    const secret = await this._call("POST", "/login_random_secret", { wallet_address: address });
    const now = Date.now() + this._offset;
    const message = siweMessage({
      domain: info.domain,
      address,
      statement: statement === undefined ? info.statement : statement,
      uri: info.uri,
      chainId,
      nonce: secret,
      issuedAt: rfc3339(now),
      expirationTime: rfc3339(now + info.nonce_lifetime * 1000),
    });
    const signature = await ask(provider, "personal_sign", [utf8Hex(message), address]);
    const data = await this._call("POST", "/login", {
      login_random_secret: secret,
      signature,
      wallet_address: address,
      signature_content: message,
    });
    return this._keep(data, chainId);
  }

  /** `fetch` with this session's credential (and the CSRF header on unsafe methods). */
  async fetchWithAuth(input, init = {}) {
    const method = (init.method || "GET").toUpperCase();
    const headers = new Headers(init.headers || {});
    for (const [name, value] of this._credentialHeaders(method)) headers.set(name, value);
    const credentials = this._csrf ? "include" : init.credentials || "same-origin";
    return this._fetch(input, { ...init, method, headers, credentials });
  }

  /** A new token for the same session (the expiry moves, the session's absolute end does not). */
  async refresh() {
    if (!this.session) throw new WalletAuthError(40112, "access token required", 401);
    const data = await this._call("POST", "/refresh", undefined, undefined, true);
    return this._keep(data, this.session.chainId);
  }

  /** End the session: on the service where it remembers logouts, and here in any case. */
  async signOut() {
    const info = this._info;
    try {
      if (this.session && info && info.logout) {
        await this._call("POST", "/logout", undefined, undefined, true);
      }
    } catch (error) {
      // Already ended or expired: signed out all the same.
      if (!(error instanceof WalletAuthError && error.status === 401)) throw error;
    } finally {
      this.session = null;
      this._token = null;
      this._csrf = null;
    }
  }

  _credentialHeaders(method, always = false) {
    const headers = [];
    if (this._token) headers.push(["Authorization", `Bearer ${this._token}`]);
    // The cookie needs the CSRF proof on unsafe methods, and on /refresh whatever the method.
    if (this._csrf && (always || !SAFE_METHODS.has(method))) {
      headers.push([this._info.csrf_header, this._csrf]);
    }
    return headers;
  }

  _keep(data, chainId) {
    const cookie = Boolean(this._info && this._info.cookie && data.csrf_token);
    this._token = cookie ? null : data.access_token;
    this._csrf = cookie ? data.csrf_token : null;
    this.session = {
      address: data.wallet_address,
      userid: data.userid,
      chainId,
      expiresAt: data.access_expired_at,
      transport: cookie ? "cookie" : "bearer",
    };
    return this.session;
  }

  async _call(method, path, body, credentials, authenticated = false) {
    const headers = new Headers();
    if (body !== undefined) headers.set("Content-Type", "application/json");
    if (authenticated) {
      for (const [name, value] of this._credentialHeaders(method, true)) headers.set(name, value);
    }
    const cookie = Boolean(this._info && this._info.cookie);
    const response = await this._fetch(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: credentials || (cookie ? "include" : "same-origin"),
    });
    let envelope;
    try {
      envelope = await response.json();
    } catch {
      throw new WalletAuthError(0, `the service answered ${response.status} without an envelope`, response.status);
    }
    if (!envelope || envelope.code !== 0) {
      throw new WalletAuthError(envelope && envelope.code, envelope && envelope.msg, response.status);
    }
    return envelope.data;
  }
}
