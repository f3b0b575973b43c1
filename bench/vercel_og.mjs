// The benchmark's title card drawn by @vercel/og, served over Node's own `http` module.
//
// Usage: node bench/vercel_og.mjs MODULES_DIR FONTS_DIR SPEC_JSON
//   MODULES_DIR  a folder where `npm install @vercel/og@0.11.1 satori@0.33.5` was run
//   FONTS_DIR    the folder holding Inter-{Regular,Medium,Bold}.otf (ogshot's own fonts)
//   SPEC_JSON    {"subtitle", "site"}: what every card says besides its title
// Listens on 127.0.0.1 (a free port), prints {"port": N} on one line, then answers
// `GET /og.png?title=...&size=...` with the PNG. `size` is the title's font size, as ogshot's
// fitting chose it for the same title (satori does not fit text to a box). Each answer carries
// `X-Render-Ms`: the time of building the response and reading its PNG bytes, what the card
// costs inside the process, without HTTP.
// The card mirrors ogshot's default layout, dark theme: a diagonal gradient, the accent bar,
// the site label, a bold title anchored above the subtitle.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modulesDir, fontsDir, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson);

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

function card(title, titleSize) {
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
          fontSize: titleSize,
          fontWeight: 700,
          lineHeight: 1.12,
          color: "#f8fafc",
        },
        title,
      ),
      el(
        { marginTop: 18, fontSize: 32, fontWeight: 400, lineHeight: 1.3, color: "#cbd5e1" },
        spec.subtitle,
      ),
    ],
  );
}

async function render(title, titleSize) {
  const response = new ImageResponse(card(title, titleSize), { width: 1200, height: 630, fonts });
  return Buffer.from(await response.arrayBuffer());
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname !== "/og.png") {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found\n");
    return;
  }
  try {
    const t0 = process.hrtime.bigint();
    const body = await render(url.searchParams.get("title") ?? "", Number(url.searchParams.get("size") ?? 64));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    res.writeHead(200, {
      "content-type": "image/png",
      "content-length": body.length,
      "cache-control": "public, max-age=86400",
      "x-render-ms": ms.toFixed(3),
    });
    res.end(body);
  } catch (err) {
    res.writeHead(500, { "content-type": "text/plain" });
    res.end(String(err) + "\n");
  }
});
server.keepAliveTimeout = 60_000;
await render("warm-up: wasm instantiation and font parsing happen here", 64);
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
