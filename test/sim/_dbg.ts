import { runSeed } from "./run.js";
const seed = Number(process.argv[2]);
const r = await runSeed(seed, { windows: true, knownBugs: ["W"], explain: false, inspect: (w) => {
  console.log(w.windowSourceRestores);
  console.log([...w.subtasks.keys()].filter((n) => n.includes("in-w")));
}});
console.log(r.failures.slice(0, 3));
