"""The door-display page served at ``/``: the live overlaid video and, large, who was last
recognised at that camera.

Everything is inline (no external script, style sheet or font), so the page works on a
display without internet access and in a kiosk browser. It shows the MJPEG stream in an
``<img>`` (reconnecting after an error), and polls ``/api/state`` twice a second for the last
decision of its camera: the person's name on green, "Unknown" on red, with the time and the
camera; a decision older than a minute is dimmed so a passer-by is not mistaken for the person
at the door now. ``?source=NAME`` picks the camera; without it, the first one. Names are set
as text, never as HTML.
"""

from __future__ import annotations

__all__ = ["PAGE", "STALE_AFTER_S"]

STALE_AFTER_S = 60  #: a decision older than this is shown dimmed

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamrec door</title>
<style>
  html, body { margin: 0; height: 100%; background: #111; color: #eee;
               font-family: system-ui, "DejaVu Sans", Arial, sans-serif; }
  main { display: flex; flex-direction: column; height: 100%; }
  #live { flex: 1 1 auto; min-height: 0; display: flex; align-items: center; justify-content: center; }
  #video { width: 100%; height: 100%; object-fit: contain; }
  #decision { padding: 2vh 3vw; text-align: center; background: #333; transition: opacity 0.5s; }
  #decision.known { background: #1b7f3b; }
  #decision.unknown { background: #b3261e; }
  #decision.stale { opacity: 0.45; }
  #name { font-size: clamp(2.5rem, 9vw, 8rem); font-weight: 700; line-height: 1.1; overflow-wrap: anywhere; }
  #detail { font-size: clamp(1rem, 3vw, 2.2rem); margin-top: 0.5vh; }
  #status { font-size: 0.9rem; padding: 0.4rem 1rem; color: #aaa; }
</style>
</head>
<body>
<main>
  <section id="live"><img id="video" alt="live video"></section>
  <section id="decision"><div id="name">Waiting for a face</div><div id="detail"></div></section>
  <footer id="status">connecting</footer>
</main>
<script>
"use strict";
const STALE_AFTER_S = __STALE_AFTER_S__;
const video = document.getElementById("video");
const panel = document.getElementById("decision");
const nameBox = document.getElementById("name");
const detailBox = document.getElementById("detail");
const statusBox = document.getElementById("status");
let source = new URLSearchParams(location.search).get("source") || "";

function connect() {
  video.src = "/stream.mjpg?source=" + encodeURIComponent(source) + "&t=" + Date.now();
}
video.addEventListener("error", () => setTimeout(connect, 1000));

function showDecision(event, now) {
  if (!event) {
    panel.className = "";
    nameBox.textContent = "Waiting for a face";
    detailBox.textContent = "";
    return;
  }
  const known = event.type === "match";
  const age = Math.max(0, now - event.ts);
  panel.className = (known ? "known" : "unknown") + (age > STALE_AFTER_S ? " stale" : "");
  nameBox.textContent = known ? (event.name || event.person_id || "Known") : "Unknown";
  const when = new Date(event.ts * 1000).toLocaleTimeString();
  detailBox.textContent = when + " \\u00b7 " + event.source + " \\u00b7 " + Math.round(age) + " s ago";
}

function showStatus(state) {
  const here = state.sources.find((s) => s.name === source);
  if (!here) {
    statusBox.textContent = "waiting for camera " + source;
  } else {
    const fps = here.fps === null ? "no frame yet" : here.fps.toFixed(1) + " fps";
    const others = state.sources.length > 1 ? " (cameras: " + state.sources.map((s) => s.name).join(", ") + ")" : "";
    statusBox.textContent = source + " \\u00b7 " + fps + others;
  }
}

async function poll() {
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    const state = await response.json();
    if (!source && state.default_source) {
      source = state.default_source;
      connect();
    }
    showDecision(state.decisions[source], state.time);
    showStatus(state);
  } catch (error) {
    statusBox.textContent = "connection to the server lost; retrying";
  }
  setTimeout(poll, 500);
}

if (source) connect();
poll();
</script>
</body>
</html>
""".replace("__STALE_AFTER_S__", str(STALE_AFTER_S))
