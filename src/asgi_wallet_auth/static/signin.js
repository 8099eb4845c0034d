// The sign-in page: find wallets (EIP-6963, else window.ethereum), sign in through the JS
// client, show who is signed in and until when, call the protected route, refresh, sign out.
import { WalletAuthClient, WalletAuthError, WalletError, discoverWallets } from "./wallet-auth.js";

const meta = (name) => {
  const element = document.querySelector(`meta[name="${name}"]`);
  return element ? element.content : "";
};
const $ = (id) => document.getElementById(id);
const auth = new WalletAuthClient(meta("wallet-auth-url"));
const meUrl = meta("wallet-auth-me");

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function explain(error) {
  if (error instanceof WalletError) {
    if (error.reason === "rejected") return "You rejected the request in your wallet. Nothing was signed.";
    return error.message;
  }
  if (error instanceof WalletAuthError) return `The service refused: ${error.msg} (code ${error.code}).`;
  return `Could not reach the service: ${error.message || error}`;
}

function busy(on) {
  for (const button of document.querySelectorAll("button")) button.disabled = on;
}

function inWords(seconds) {
  if (seconds >= 2 * 86400) return `${Math.round(seconds / 86400)} days`;
  if (seconds >= 2 * 3600) return `${Math.round(seconds / 3600)} hours`;
  return `${Math.max(0, Math.round(seconds / 60))} minutes`;
}

function showExpiry(session) {
  const when = new Date(session.expiresAt * 1000);
  const left = session.expiresAt - Date.now() / 1000;
  $("expiry").textContent = `${when.toLocaleString()} (in about ${inWords(left)})`;
}

async function showMe() {
  if (!meUrl) return;
  $("me-url").textContent = meUrl;
  const response = await auth.fetchWithAuth(meUrl);
  const envelope = await response.json();
  $("me").textContent = JSON.stringify(envelope.data ?? envelope, null, 2);
  if (envelope.code !== 0) throw new WalletAuthError(envelope.code, envelope.msg, response.status);
}

async function signIn(wallet) {
  busy(true);
  say(`Waiting for ${wallet.info.name}…`);
  try {
    const session = await auth.signIn(wallet.provider);
    $("address").textContent = session.address;
    $("chain").textContent = String(session.chainId);
    $("transport").textContent =
      session.transport === "cookie" ? "an HttpOnly cookie (with a CSRF token)" : "a bearer token, in memory only";
    showExpiry(session);
    $("start").hidden = true;
    $("session").hidden = false;
    say(`Signed in with ${wallet.info.name}.`);
    await showMe();
  } catch (error) {
    say(explain(error), true);
  } finally {
    busy(false);
  }
}

async function refresh() {
  busy(true);
  try {
    showExpiry(await auth.refresh());
    say("Token refreshed.");
    await showMe();
  } catch (error) {
    say(explain(error), true);
  } finally {
    busy(false);
  }
}

async function signOut() {
  busy(true);
  try {
    await auth.signOut();
    $("session").hidden = true;
    $("start").hidden = false;
    $("me").textContent = "";
    say("Signed out.");
  } catch (error) {
    say(explain(error), true);
  } finally {
    busy(false);
  }
}

function listWallets(wallets) {
  const list = $("wallets");
  list.replaceChildren();
  if (!wallets.length) {
    say("No wallet found. Install a browser wallet (an extension such as MetaMask or Rabby) and reload this page.", true);
    return;
  }
  for (const wallet of wallets) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.uuid = wallet.info.uuid;
    if (wallet.info.icon && wallet.info.icon.startsWith("data:image/")) {
      const icon = document.createElement("img");
      icon.src = wallet.info.icon;
      icon.alt = "";
      button.append(icon);
    }
    button.append(document.createTextNode(wallet.info.name || "Wallet"));
    button.addEventListener("click", () => signIn(wallet));
    list.append(button);
  }
}

async function start() {
  $("refresh").addEventListener("click", refresh);
  $("signout").addEventListener("click", signOut);
  try {
    const info = await auth.info();
    let text = `You sign in to ${info.domain}.`;
    if (info.domain !== window.location.host) {
      text += ` (This page is ${window.location.host}; your wallet may warn that the names differ.)`;
    }
    $("service").textContent = text;
  } catch (error) {
    $("service").textContent = "";
    say(explain(error), true);
    return;
  }
  listWallets(await discoverWallets());
}

start();
