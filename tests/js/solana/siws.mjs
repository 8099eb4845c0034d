// Reads {"render": [SolanaSignInInput...], "parse": [text...]} as JSON on stdin and writes
// {"rendered": [text...], "parsed": [fields or null...]} with @solana/wallet-standard-util, so the
// Python tests can compare its SIWS renderer and parser with theirs.
import { createSignInMessageText, parseSignInMessageText } from '@solana/wallet-standard-util';

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk;
const request = JSON.parse(input);
const rendered = (request.render ?? []).map((fields) => createSignInMessageText(fields));
const parsed = (request.parse ?? []).map((text) => {
    const fields = parseSignInMessageText(text);
    if (!fields) return null;
    // JSON drops undefined members: only the fields the text has are sent back.
    return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
});
process.stdout.write(JSON.stringify({ rendered, parsed }));
