// The siwe-recap package's view of ReCaps, for tests/test_recap.py to compare against.
//   node recap.mjs vectors  -> the package's own valid/invalid vectors, each valid message also
//                              rendered to EIP-4361 text by the siwe package
//   node recap.mjs build    -> stdin: [{att, prf}]; stdout: [{uri, statement}] by the package
//   node recap.mjs verify   -> stdin: [message text]; stdout: [{ok, att}] of extract_and_verify
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { SiweMessage } from "siwe";
import { Recap } from "siwe-recap";

// The package's own test vectors ship beside its code (its exports do not list them).
const packageDir = fileURLToPath(new URL("./node_modules/siwe-recap/", import.meta.url));

function readStdin() {
  return JSON.parse(readFileSync(0, "utf8"));
}

function vectors() {
  const load = (name) => JSON.parse(readFileSync(`${packageDir}test/${name}.json`, "utf8"));
  const valid = load("valid");
  for (const vector of Object.values(valid)) {
    const message = new SiweMessage(vector.message);
    vector.text = typeof vector.message === "string" ? vector.message : message.prepareMessage();
  }
  return { valid, invalid: load("invalid"), serialized: load("serialized_cap") };
}

function build() {
  return readStdin().map(({ att, prf }) => {
    const recap = new Recap(att, prf);
    return { uri: recap.encode(), statement: recap.statement };
  });
}

function verify() {
  return readStdin().map((text) => {
    try {
      const recap = Recap.extract_and_verify(new SiweMessage(text));
      return { ok: true, att: recap.attenuations };
    } catch (error) {
      return { ok: false, error: String(error.message || error) };
    }
  });
}

const modes = { vectors, build, verify };
const mode = modes[process.argv[2]];
if (mode === undefined) {
  console.error("usage: node recap.mjs vectors|build|verify");
  process.exit(2);
}
process.stdout.write(JSON.stringify(mode()));
