"""The door-display page served at ``/``: the live overlaid video of one camera and, large,
what the door should know now.

The page shows what ``/api/state`` says the camera's door shows (:mod:`streamrec.web.door`),
polled twice a second: "Waiting for a face" while nobody is there; "Checking" on a neutral
panel while a face is on screen and not decided yet, so a newcomer is never greeted with the
previous person's name; the name on green, or "Unknown" on red, while that face is on screen
and for the configured hold time (``[outputs] door_hold_s``) after it left. ``?source=NAME``
picks the camera (without it, the first one). At a door that decides access, a running
challenge shows "Turn your head left" (or right) with a large arrow pointing that way, as the
person in front of the display sees it, and no name; then "GRANTED" on green with the name, or
"DENIED" on red with the reason in words (no name: a photo held up learns nothing); a name that is no camera gets a message listing
the cameras, as links, instead of a video that cannot load. The video reconnects by itself
after an error, hidden meanwhile rather than shown as a broken image.

Everything is inline (no external script, style sheet or font), so the page works on a
display without internet access and in a kiosk browser, in landscape and on a portrait
tablet. Names are set as text, never as HTML.
"""

from __future__ import annotations

__all__ = ["PAGE"]

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
  #video.lost { visibility: hidden; }
  #message { padding: 4vh 6vw; text-align: center; font-size: clamp(1.2rem, 4vw, 2.4rem); }
  #cameras { display: flex; flex-wrap: wrap; gap: 1rem; justify-content: center; margin-top: 1.5rem; }
  #cameras a { color: #eee; background: #2b4a6f; padding: 0.5em 1em; border-radius: 0.4em; text-decoration: none; }
  #decision { padding: 2vh 3vw; text-align: center; background: #333; }
  #decision[data-state="checking"] { background: #45505e; }
  #decision[data-state="match"] { background: #1b7f3b; }
  #decision[data-state="unknown"] { background: #b3261e; }
  #decision[data-state="challenge"] { background: #1d4f91; }
  #decision[data-state="granted"] { background: #1b7f3b; }
  #decision[data-state="denied"] { background: #b3261e; }
  #arrow { font-size: clamp(5rem, 22vw, 16rem); font-weight: 700; line-height: 1; }
  #name { font-size: clamp(2.5rem, 9vw, 8rem); font-weight: 700; line-height: 1.1; overflow-wrap: anywhere; }
  #detail { font-size: clamp(1rem, 3vw, 2.2rem); margin-top: 0.5vh; min-height: 1.2em; }
  #status { font-size: 0.9rem; padding: 0.4rem 1rem; color: #aaa; overflow-wrap: anywhere; }
</style>
</head>
<body>
<main>
  <section id="live">
    <img id="video" alt="live video" hidden>
    <div id="message" hidden><div id="missing"></div><nav id="cameras"></nav></div>
  </section>
  <section id="decision" data-state="waiting"><div id="arrow" aria-hidden="true" hidden></div><div id="name">Waiting for a face</div><div id="detail"></div></section>
  <footer id="status">connecting</footer>
</main>
<script>
"use strict";
const video = document.getElementById("video");
const message = document.getElementById("message");
const panel = document.getElementById("decision");
const nameBox = document.getElementById("name");
const detailBox = document.getElementById("detail");
const arrowBox = document.getElementById("arrow");
const statusBox = document.getElementById("status");
const asked = new URLSearchParams(location.search).get("source") || "";
let streaming = "";  // the camera the video shows

function stream(name) {
  if (streaming === name) return;
  streaming = name;
  message.hidden = true;
  video.hidden = false;
  video.src = "/stream.mjpg?source=" + encodeURIComponent(name) + "&t=" + Date.now();
}
video.addEventListener("load", () => video.classList.remove("lost"));
video.addEventListener("error", () => {
  if (!streaming) return;
  video.classList.add("lost");
  const name = streaming;
  streaming = "";
  setTimeout(() => stream(name), 1000);
});

function show(state, name, detail, arrow = "") {
  panel.dataset.state = state;
  arrowBox.textContent = arrow;
  arrowBox.hidden = !arrow;
  nameBox.textContent = name;
  detailBox.textContent = detail;
}

const ARROWS = { left: "\u2190", right: "\u2192" };  // as the person facing the display sees it
const DENIALS = {
  wrong_direction: "turned the other way", no_movement: "no head movement", timeout: "not turned in time",
  unconfirmed: "face not confirmed", identity_changed: "another face", track_lost: "face left the picture",
  stalled: "camera stalled", source_lost: "camera lost", restarted: "system restarted",
};

function showNoCamera(name, cameras) {
  streaming = "";
  video.removeAttribute("src");
  video.hidden = true;
  message.hidden = false;
  document.getElementById("missing").textContent = cameras.length
    ? "There is no camera named \\u201c" + name + "\\u201d. Cameras:"
    : "There is no camera named \\u201c" + name + "\\u201d, and no camera yet.";
  const links = cameras.map((camera) => {
    const link = document.createElement("a");
    link.href = "?source=" + encodeURIComponent(camera);
    link.textContent = camera;
    return link;
  });
  document.getElementById("cameras").replaceChildren(...links);
  show("nocamera", "No such camera", "");
  statusBox.textContent = "cameras: " + (cameras.join(", ") || "none yet");
}

function showDoor(door, camera) {
  if (door.state === "challenge") {
    const direction = door.event.direction === "right" ? "right" : "left";
    show("challenge", "Turn your head " + direction, "", ARROWS[direction]);
  } else if (door.state === "granted") {
    show("granted", "GRANTED", door.event.name || door.event.person_id || "");
  } else if (door.state === "denied") {
    show("denied", "DENIED", DENIALS[door.event.reason] || "");
  } else if (door.state === "match" || door.state === "unknown") {
    const event = door.event;
    const when = new Date(event.ts * 1000).toLocaleTimeString();
    const name = door.state === "match" ? (event.name || event.person_id || "Known") : "Unknown";
    show(door.state, name, when + " \\u00b7 " + camera);
  } else if (door.state === "checking") {
    show("checking", "Checking\\u2026", "a face is in view");
  } else {
    show("waiting", "Waiting for a face", camera);
  }
}

function showStatus(state, camera) {
  const here = state.sources.find((s) => s.name === camera);
  const fps = here.fps === null ? "no frame yet" : here.fps.toFixed(1) + " fps";
  const others = state.sources.length > 1 ? " (cameras: " + state.sources.map((s) => s.name).join(", ") + ")" : "";
  statusBox.textContent = camera + " \\u00b7 " + fps + others;
}

async function poll() {
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    const state = await response.json();
    const cameras = state.sources.map((s) => s.name);
    const camera = asked || state.default_source || "";
    if (!camera) {
      show("waiting", "Waiting for a camera", "");
      statusBox.textContent = "no camera has sent a picture yet";
    } else if (!cameras.includes(camera)) {
      showNoCamera(camera, cameras);
    } else {
      stream(camera);
      showDoor(state.door[camera], camera);
      showStatus(state, camera);
    }
  } catch (error) {
    statusBox.textContent = "connection to the server lost; retrying";
  }
  setTimeout(poll, 500);
}

poll();
</script>
</body>
</html>
"""
