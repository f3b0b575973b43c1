// Render the benchmark's title card with @vercel/og, N times, and print the timings as JSON.
//
// Usage: node bench/vercel_og.mjs MODULES_DIR FONTS_DIR SPEC_JSON N [OUT.png]
//   MODULES_DIR  a folder where `npm install @vercel/og@0.11.1 satori@0.33.5` was run
//   FONTS_DIR    the folder holding Inter-{Regular,Medium,Bold}.otf (ogshot's own fonts)
//   SPEC_JSON    {"cards": [{"title", "title_size"}...], "subtitle", "site"}: the cards ogshot
//                draws, rendered in turn so that no run repeats the previous one
// The card mirrors ogshot's default layout, dark theme: a diagonal gradient, the accent bar,
// the site label, a bold title anchored above the subtitle. Each timing covers building the
// response and reading its PNG bytes, which is what a server does per request.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modulesDir, fontsDir, specJson, countArg, outPath] = process.argv.slice(2);
const spec = JSON.parse(specJson);
const count = Number(countArg);

const require = createRequire(join(modulesDir, "package.json"));
const { ImageResponse } = await import(pathToFileURL(require.resolve("@vercel/og")).href);

const font = (file) => {
  const buf = readFileSync(join(fontsDir, file));
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
};
const fonts = [
  { name: "Inter", data: font("Inter-Regular.otf"), weight: 400, style: "normal" },
  { name: "Inter", data: font("Inter-Medium.otf"), weight: 500, style: "normal" },
  { name: "Inter", data: font("Inter-Bold.otf"), weight: 700, style: "normal" },
];

const el = (style, children) => ({ type: "div", props: { style, children } });

function card(title) {
  return el(
    {
      width: "100%",
      height: "100%",
      display: "flex",
      flexDirection: "column",
      padding: "72px 80px 100px 80px",
      backgroundImage: "linear-gradient(240deg, #0b1020, #1e1b4b)",
      fontFamily: "Inter",
    },
    [
      el({ width: 96, height: 10, borderRadius: 5, backgroundColor: "#818cf8" }),
      el({ marginTop: 22, fontSize: 28, fontWeight: 500, color: "#cbd5e1" }, spec.site),
      el(
        {
          display: "flex",
          flexGrow: 1,
          alignItems: "flex-end",
          fontSize: title.title_size,
          fontWeight: 700,
          lineHeight: 1.12,
          color: "#f8fafc",
        },
        title.title,
      ),
      el(
        { marginTop: 18, fontSize: 32, fontWeight: 400, lineHeight: 1.3, color: "#cbd5e1" },
        spec.subtitle,
      ),
    ],
  );
}

let turn = 0;
async function once() {
  const title = spec.cards[turn++ % spec.cards.length];
  const response = new ImageResponse(card(title), { width: 1200, height: 630, fonts });
  return Buffer.from(await response.arrayBuffer());
}

let last = await once(); // warm-up: wasm instantiation and font parsing happen here
last = await once();
const samples = [];
for (let i = 0; i < count; i++) {
  const t0 = process.hrtime.bigint();
  last = await once();
  samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
if (outPath) writeFileSync(outPath, last);
console.log(JSON.stringify({ samples_ms: samples, bytes: last.length }));
