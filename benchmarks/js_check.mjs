// Reads JSONL {text} on stdin, prints one JSON boolean per line: does V8 accept it as a script or module?
import vm from "node:vm";
import readline from "node:readline";
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  const { text } = JSON.parse(line);
  let ok = false;
  try { new vm.Script(text); ok = true; } catch (e) {
    try { new vm.SourceTextModule(text); ok = true; } catch (e2) { ok = false; }
  }
  console.log(JSON.stringify(ok));
}
