"""The Scatter Plot plugin's figure at 100,000 points in Chromium: payload bytes and the time from the
request for the item JSON to the first drawn frame, WebGL (ours) against the same figure drawn on a 2D
canvas. Target: first frame <= 2 s.

Data: sklearn `make_blobs`, 10 centres in 2-D, colour = blob id, `rows` = 0..n-1 as the plugin passes
them (no thumbnails or hover columns: the plugin leaves those out above 20,000 points). The payload is
the plugin's output file as the SPA fetches it (`{"item": json_item, "csv": ...}`), served uncompressed
by a local http.server on 127.0.0.1; its gzip size is printed too.

Baseline: the same `scatter_item` output with the one `output_backend` attribute of the Figure model
in the item's doc JSON rewritten from "webgl" to "canvas" (a post-processed copy; nothing else
differs but one byte).

A tiny page loads BokehJS (bokeh.min.js and bokeh-gl.min.js: Bokeh's WebGL glyphs live in
bokeh-gl, without it BokehJS silently draws on canvas), then times, with performance.now(): fetch
start -> JSON parsed -> `Bokeh.embed.embed_item` -> the root view's `ready` and the document's
`idle` -> drawn (below). Each load is a fresh browser context (no cache); the figure is
1920x1080 (the plugin's default) in a 1920x1080 viewport. One more load uses only bokeh.min.js, the
script the SPA's index.html loads, to show whether WebGL is active there. Headless Chromium has no GPU
here: WebGL is ANGLE on SwiftShader (software), reported by `webgl_renderer`.

"Drawn" means: the document is idle, then one pixel read back from the plot's canvas (Chromium
rasterises canvases in its GPU process after the JavaScript returns; the read waits for it), then one
requestAnimationFrame. "document idle" alone is printed as well.

Second baseline, `canvas_cpu`: the canvas item in a Chromium with --disable-accelerated-2d-canvas, the
2D canvas rasterised on the CPU as in a browser without a usable GPU (Chromium's default here puts 2D
canvases on SwiftShader too, which is slow for 100k small paths).

Pan: after the timed loads, one more load per run with 10 programmatic x-range shifts back to back,
each timed from the range change to the end of its repaint plus two animation frames (frames are held
back while the GPU process is busy, so this paces at the drawing rate; the first pan, with an empty
pipeline, is left out of the median). No pixel read per pan: after two reads Chromium moves a 2D
canvas to the CPU. A full-resolution redraw; a mouse pan draws a 10x down-sampled level of detail
while dragging and this full redraw when it stops.

    .venv/bin/python benchmarks/scatter.py
"""
from __future__ import annotations

import gzip
import json
import shutil
import statistics
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402

from nnc_web.engine.analysis.scatter import scatter_item  # noqa: E402

POINTS = 100_000
LOADS = 5
PANS = 10
LOAD_TIMEOUT_MS = 60_000
CHROMIUM_ARGS = ["--no-sandbox", "--enable-webgl", "--ignore-gpu-blocklist", "--use-gl=angle",
                 "--use-angle=swiftshader", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8">{scripts}
<style>body {{ margin: 0 }} #plot {{ width: 1920px }}</style></head>
<body><div id="plot"></div></body></html>
"""

# Runs in the page: one load of `url`, then the pans. Returns the timings and what was drawn with.
MEASURE = """
async ([url, pans, timeout]) => {
  const deadline = new Promise((_, reject) => setTimeout(() => reject(new Error('load timed out')), timeout))
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()))
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
  const run = async () => {
    await sleep(500); await frame(); await frame()  // the page (and Chromium's GPU process) settled
    const t0 = performance.now()
    const response = await fetch(url, { cache: 'no-store' })
    const item = (await response.json()).item
    const t1 = performance.now()
    const manager = await Bokeh.embed.embed_item(item, 'plot')
    const t2 = performance.now()
    const view = manager.roots[0]
    await view.ready
    const doc = view.model.document
    if (!doc.is_idle) await new Promise((resolve) => doc.idle.connect(() => resolve()))
    const tIdle = performance.now()
    // Drawn, not only issued: Chromium rasterises canvases in its GPU process (SwiftShader here), after
    // the JavaScript returns. Reading one pixel of the plot's canvas waits for that; then one frame.
    const layer = view.canvas_view.primary
    layer.ctx.getImageData(0, 0, 1, 1)
    await frame()
    const t3 = performance.now()
    const glyphs = [...view.renderer_views.values()].filter((r) => r.glyph != null)
    const webgl = view.canvas_view.webgl != null && glyphs.some((r) => r.glyph.glglyph != null)
    // Each pan: x-range shift -> the end of the plot view's next paint (its own method, wrapped on this
    // view) -> two frames. No pixel read here: after two reads Chromium moves a 2D canvas to the CPU.
    const pan = []
    const range = view.model.x_range
    const paint = view.paint
    let painted = null
    view.paint = function () { paint.call(this); if (painted) painted() }
    for (let i = 0; i < pans; i++) {
      const shift = (range.end - range.start) * 0.02
      const done = new Promise((resolve) => { painted = resolve })
      const start = performance.now()
      range.setv({ start: range.start + shift, end: range.end + shift })
      view.request_paint()  // the range change alone does not always schedule one (seen here, Bokeh 3.9.2)
      await done
      await frame(); await frame()
      pan.push(performance.now() - start)
      painted = null
    }
    view.paint = paint
    const gl = document.createElement('canvas').getContext('webgl')
    const info = gl && gl.getExtension('WEBGL_debug_renderer_info')
    const renderer = gl ? (info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER))
      : 'none'
    return { fetch_ms: t1 - t0, embed_ms: t2 - t1, idle_ms: tIdle - t0, first_frame_ms: t3 - t0, webgl,
             renderer, pan, canvas: [view.canvas_view.bbox.width, view.canvas_view.bbox.height] }
  }
  return await Promise.race([run(), deadline])
}
"""


def blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    points, labels = make_blobs(n_samples=POINTS, centers=10, n_features=2, cluster_std=1.5, random_state=0)
    return points[:, 0], points[:, 1], labels.astype(np.float64)


def canvas_copy(item: dict) -> dict:
    """The same item with the Figure's output_backend set to "canvas" (JSON post-processing)."""
    copy = json.loads(json.dumps(item))
    found = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and node.get("name") in ("Figure", "Plot"):
                attributes = node.get("attributes", {})
                if attributes.get("output_backend") == "webgl":
                    attributes["output_backend"] = "canvas"
                    found.append(node.get("id"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(copy["doc"])
    if len(found) != 1:
        raise RuntimeError(f"expected one webgl Figure in the item, found {found}")
    return copy


def serve(files: dict[str, tuple[bytes, str]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body, kind = files.get(self.path.split("?")[0], (b"not found", "text/plain"))
            self.send_response(200 if self.path.split("?")[0] in files else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def bokeh_dir() -> Path:
    built = ROOT / "build" / "static" / "bokeh"
    if (built / "bokeh.min.js").exists() and (built / "bokeh-gl.min.js").exists():
        return built
    from bokeh.util.paths import bokehjs_path
    return bokehjs_path() / "js"


def main() -> None:
    executable = shutil.which("chromium")
    if executable is None:
        sys.exit("chromium is missing (apt-get install chromium)")
    x, y, c = blobs()
    item = scatter_item(x, y, c, x_label="x", y_label="y", c_label="blob", rows=list(range(POINTS)))
    payloads = {name: json.dumps({"item": it, "csv": "blobs.csv"}).encode()
                for name, it in (("webgl", item), ("canvas", canvas_copy(item)))}
    js = bokeh_dir()
    files = {f"/{name}.json": (body, "application/json") for name, body in payloads.items()}
    for script in ("bokeh.min.js", "bokeh-gl.min.js"):
        files[f"/{script}"] = ((js / script).read_bytes(), "text/javascript")
    for page, scripts in (("/gl.html", ("bokeh.min.js", "bokeh-gl.min.js")), ("/spa.html", ("bokeh.min.js",))):
        tags = "".join(f'\n<script src="/{script}"></script>' for script in scripts)
        files[page] = (PAGE.format(scripts=tags).encode(), "text/html")
    server = serve(files)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    results: dict[str, list[dict]] = {"webgl": [], "canvas": [], "canvas_cpu": []}
    try:
        with sync_playwright() as playwright:
            # Two browsers: Chromium's default here (2D canvases rasterised on SwiftShader like WebGL) and
            # one with CPU-rasterised 2D canvases, what a browser without a usable GPU does.
            browsers = {"gpu": playwright.chromium.launch(executable_path=executable, headless=True,
                                                          args=CHROMIUM_ARGS),
                        "cpu": playwright.chromium.launch(executable_path=executable, headless=True,
                                                          args=CHROMIUM_ARGS + ["--disable-accelerated-2d-canvas"])}
            try:
                def load(page_path: str, payload: str, pans: int = 0, browser: str = "gpu") -> dict:
                    context = browsers[browser].new_context(viewport={"width": 1920, "height": 1080},
                                                            device_scale_factor=1)
                    try:
                        page = context.new_page()
                        page.set_default_timeout(LOAD_TIMEOUT_MS)
                        page.goto(base + page_path, wait_until="load")
                        return page.evaluate(MEASURE, [f"/{payload}.json", pans, LOAD_TIMEOUT_MS])
                    finally:
                        context.close()

                runs = {"webgl": ("webgl", "gpu"), "canvas": ("canvas", "gpu"), "canvas_cpu": ("canvas", "cpu")}
                load("/gl.html", "webgl")  # warm-ups: Chromium's first process/shader start is not counted
                load("/gl.html", "canvas", browser="cpu")
                for _ in range(LOADS):  # alternate, so drift on the shared box hits all alike
                    for name, (payload, browser) in runs.items():
                        results[name].append(load("/gl.html", payload, browser=browser))
                spa = load("/spa.html", "webgl")
                # Pans in loads of their own: queued GPU-process work from them would slow the next load.
                pans = {name: load("/gl.html", payload, PANS, browser)["pan"]
                        for name, (payload, browser) in runs.items()}
            finally:
                for browser in browsers.values():
                    browser.close()
    finally:
        server.shutdown()
        server.server_close()

    def median(backend: str, key: str) -> float:
        return statistics.median(r[key] for r in results[backend])

    webgl, canvas = results["webgl"], results["canvas"]
    body = payloads["webgl"]
    print(f"{POINTS} points, figure {webgl[0]['canvas'][0]:.0f}x{webgl[0]['canvas'][1]:.0f} px, "
          f"{LOADS} loads each (fresh context), WebGL renderer: {webgl[0]['renderer']}")
    for backend in results:
        print(f"{backend}: first frame " + ", ".join(f"{r['first_frame_ms']:.0f}" for r in results[backend])
              + f" ms; medians: fetch+parse {median(backend, 'fetch_ms'):.0f} ms, embed_item "
              f"{median(backend, 'embed_ms'):.0f} ms, document idle at {median(backend, 'idle_ms'):.0f} ms; "
              "pans " + ", ".join(f"{t:.0f}" for t in pans[backend]) + " ms")
    print(f"RESULT points={POINTS}")
    print(f"RESULT payload_bytes={len(body)} gzip_bytes={len(gzip.compress(body, 6))} "
          f"canvas_payload_bytes={len(payloads['canvas'])}")
    active = int(all(r["webgl"] for r in webgl))
    drew_webgl = int(any(r["webgl"] for r in canvas + results["canvas_cpu"]))
    print(f"RESULT webgl_active={active} canvas_item_webgl={drew_webgl} "
          f"webgl_renderer={webgl[0]['renderer']!r}")
    print(f"RESULT spa_scripts_webgl_active={int(spa['webgl'])} "
          f"spa_scripts_first_frame_ms={spa['first_frame_ms']:.0f}")
    print("RESULT " + " ".join(f"{name}_pan_ms={statistics.median(pans[name][1:]):.0f}" for name in results))
    print(f"RESULT canvas_cpu_first_frame_ms={median('canvas_cpu', 'first_frame_ms'):.0f} cpu_ratio="
          f"{median('canvas_cpu', 'first_frame_ms') / median('webgl', 'first_frame_ms'):.2f}")
    print(f"RESULT webgl_first_frame_ms={median('webgl', 'first_frame_ms'):.0f}")
    print(f"RESULT canvas_first_frame_ms={median('canvas', 'first_frame_ms'):.0f}")
    print(f"RESULT ratio={median('canvas', 'first_frame_ms') / median('webgl', 'first_frame_ms'):.2f}")


if __name__ == "__main__":
    main()
