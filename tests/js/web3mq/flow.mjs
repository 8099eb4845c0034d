// Drives Web3MQ's published JavaScript SDK (@web3mq/client) against a running service, as a dapp
// in a browser would: the SDK's own code builds every request, hash and ed25519 signature. The
// only stand-ins are the browser's: window.location, localStorage and window.ethereum, the last
// backed by fixed local secp256k1 keys (EIP-191 personal_sign, as MetaMask signs).
//
// Input (stdin, JSON): {base, origin, password, newPassword, wallet, second, appRoutes}.
// Output (stdout, JSON): what each step returned or the error it threw, step by step.
import { secp256k1 } from "@noble/curves/secp256k1";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import "fake-indexeddb/auto"; // the SDK keeps chat state in the browser's IndexedDB
import sdk from "@web3mq/client";
import jsSha3 from "js-sha3";

const { Client } = sdk;
// The SDK logs to the console as it goes; stdout is this script's report alone.
console.log = (...args) => process.stderr.write(args.join(" ") + "\n");
const { sha3_224 } = jsSha3; // the hash the SDK itself uses, for this service's bind consent
const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => { text += chunk; });
  process.stdin.on("end", () => resolve(text));
}));

function addressOf(key) {
  const pub = secp256k1.getPublicKey(hexToBytes(key), false).slice(1);
  return "0x" + bytesToHex(keccak_256(pub).slice(-20)); // lower case, as wallets report it
}

function personalSign(key, text) {
  const message = /^0x([0-9a-fA-F]{2})*$/.test(text) ? hexToBytes(text.slice(2)) : utf8ToBytes(text);
  const prefix = utf8ToBytes(`\x19Ethereum Signed Message:\n${message.length}`);
  const sig = secp256k1.sign(keccak_256(concatBytes(prefix, message)), hexToBytes(key));
  const hex = (n) => n.toString(16).padStart(64, "0");
  return "0x" + hex(sig.r) + hex(sig.s) + (27 + sig.recovery).toString(16);
}

// The browser the SDK expects.
const storage = new Map();
globalThis.window = globalThis;
globalThis.location = { origin: input.origin };
globalThis.localStorage = {
  getItem: (k) => (storage.has(k) ? storage.get(k) : null),
  setItem: (k, v) => storage.set(k, String(v)),
  removeItem: (k) => storage.delete(k),
  clear: () => storage.clear(),
};
// Web3MQ's message relay is not this service: the client's socket stays closed, sending nothing.
globalThis.WebSocket = class {
  constructor(url) { this.url = url; this.readyState = 3; }
  send() {}
  close() {}
};
const wallets = { wallet: input.wallet, second: input.second };
let current = "wallet";
globalThis.ethereum = {
  async request({ method, params }) {
    const key = wallets[current];
    if (method === "wallet_requestPermissions") return [{ parentCapability: "eth_accounts" }];
    if (method === "eth_accounts" || method === "eth_requestAccounts") return [addressOf(key)];
    if (method === "personal_sign") {
      if (params[1].toLowerCase() !== addressOf(key)) throw new Error("unknown account");
      return personalSign(key, params[0]);
    }
    throw new Error(`unsupported method ${method}`);
  },
};

const steps = [];
async function step(name, work) {
  try {
    const value = await work();
    steps.push({ name, ok: true, value: value === undefined ? null : value });
    return value;
  } catch (error) {
    steps.push({ name, ok: false, error: String(error && error.message) });
    return undefined;
  }
}

const register = () => Client.register;
const walletType = "metamask";

// Register and log in one wallet with a password, the SDK's way; the keys it ends with.
async function signUp(who, password, knownUserid) {
  current = who;
  const { address } = await register().getAccount(walletType);
  const info = await step(`${who}.getUserInfo`, () =>
    register().getUserInfo({ did_type: "eth", did_value: address }));
  const userid = knownUserid || info.userid;
  const main = await step(`${who}.getMainKeypair`, () =>
    register().getMainKeypair({ password, did_type: walletType, did_value: address }));
  if (!info.userExist) {
    const { signContent } = await register().getRegisterSignContent({
      userid, mainPublicKey: main.publicKey, didType: walletType, didValue: address,
    });
    const { sign } = await register().sign(signContent, address, walletType);
    await step(`${who}.register`, () => register().register({
      userid, didValue: address, mainPublicKey: main.publicKey, signature: sign,
      didType: walletType,
    }));
  }
  return { address, userid, main, info };
}

async function logIn(who, name, account, password, main) {
  current = who;
  return step(name, () => register().login({
    password, userid: account.userid, didValue: account.address, didType: walletType,
    mainPrivateKey: main.secretKey, mainPublicKey: main.publicKey,
  }));
}

await Client.init({ connectUrl: input.base, app_key: "asgi-wallet-auth-tests" });

// 1. A new wallet registers its main key and logs in with a session key.
const alice = await signUp("wallet", input.password);
await step("wallet.getUserInfo.after", () =>
  register().getUserInfo({ did_type: "eth", did_value: alice.address }));
const session = await logIn("wallet", "wallet.login", alice, input.password, alice.main);
let client = Client.getInstance({
  PrivateKey: session.tempPrivateKey, PublicKey: session.tempPublicKey, userid: alice.userid,
});

// 2. Signed calls the service answers itself.
await step("getMyProfile", () => client.user.getMyProfile());
await step("updateMyProfile", () => client.user.updateMyProfile("alice", "https://example.org/a.png"));
await step("getMyProfile.after", () => client.user.getMyProfile());
await step("getUserBindDids.empty", () => client.user.getUserBindDids());

// 3. Signed calls answered by the application behind the middleware.
if (input.appRoutes) {
  await step("searchUsers", () => client.user.searchUsers("bob"));
  await step("queryChannels", () => client.channel.queryChannels({ page: 1, size: 20 }));
  await step("getFollowerList", () => client.contact.getFollowerList({ page: 1, size: 20 }));
  await step("getMyCreateDappList", () => client.dapp.getMyCreateDappList({ page: 1, size: 10 }));
}

// 4. A second wallet is bound to the userid: the user signs the request with the session key,
// the second wallet signs its consent (this service's did_content; docs/web3mq.md).
current = "second";
const second = addressOf(input.second);
const consentTime = Date.now();
const nonce = sha3_224(
  alice.userid + "eth" + second + consentTime);
const consentText = `Web3MQ wants you to sign in with your MetaMask account:\n${second}\n` +
  `For Web3MQ bind did\nURI: ${input.origin}\nVersion: 1\n\nNonce: ${nonce}\n` +
  `Issued At: ${sdk.getCurrentDate()}`;
const consent = (await register().sign(consentText, second, walletType)).sign;
current = "wallet";
await step("userBindDid", () => client.user.userBindDid({
  providerId: "web3mq", didType: "eth", didValue: second,
  didContent: JSON.stringify({
    signature_content: consentText, did_signature: consent, timestamp: consentTime,
  }),
}));
await step("getUserBindDids", () => client.user.getUserBindDids());

// 5. The bound wallet registers its own main key under that userid and logs in as it.
const bob = await signUp("second", input.password, alice.userid);
const bobSession = await logIn("second", "second.login", bob, input.password, bob.main);
const bobClient = bobSession && Client.getInstance({
  PrivateKey: bobSession.tempPrivateKey, PublicKey: bobSession.tempPublicKey, userid: alice.userid,
});
await step("second.getMyProfile", () => bobClient.user.getMyProfile());

// 6. A new password: the wallet signs again, the main key is replaced, and the old one is dead.
current = "wallet";
const fresh = await step("wallet.getMainKeypair.new", () => register().getMainKeypair({
  password: input.newPassword, did_type: walletType, did_value: alice.address,
}));
const { signContent } = await register().getRegisterSignContent({
  userid: alice.userid, mainPublicKey: fresh.publicKey, didType: walletType,
  didValue: alice.address,
});
const { sign } = await register().sign(signContent, alice.address, walletType);
await step("resetPassword", () => register().resetPassword({
  userid: alice.userid, didValue: alice.address, mainPublicKey: fresh.publicKey, signature: sign,
  didType: walletType,
}));
await logIn("wallet", "wallet.login.oldKey", alice, input.password, alice.main);
const renewed = await logIn("wallet", "wallet.login.newKey", alice, input.newPassword, fresh);
client = Client.getInstance({
  PrivateKey: renewed.tempPrivateKey, PublicKey: renewed.tempPublicKey, userid: alice.userid,
});
await step("getMyProfile.newSession", () => client.user.getMyProfile());

process.stdout.write(JSON.stringify({ address: alice.address, second, userid: alice.userid,
  mainPublicKey: alice.main.publicKey, newMainPublicKey: fresh.publicKey,
  sessionPublicKey: renewed.tempPublicKey, steps }));
