"""The face library page (``/faces``): one self-contained HTML document, no external assets.

Every name and camera is put in the page as text (``textContent``), never as HTML. Changes go
through ``fetch()`` with the ``X-CSRF-Token`` header set to the ``streamrec_csrf`` cookie (when
there is one), as the web server's CSRF rule asks; photos are sent as the raw request body.
"""

from __future__ import annotations

__all__ = ["LIBRARY_PAGE"]

LIBRARY_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamrec: face library</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1rem 2rem; background: #f6f6f4; color: #222; }
  h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
  .grid { display: flex; flex-wrap: wrap; gap: 0.8rem; }
  .card { background: #fff; border: 1px solid #ccc; border-radius: 6px; padding: 0.6rem; }
  .person { width: 100%; }
  .person .photos { display: flex; flex-wrap: wrap; gap: 0.4rem; margin: 0.4rem 0; }
  img { width: 96px; height: 96px; object-fit: cover; border-radius: 4px; background: #ddd; display: block; }
  .nophoto { width: 96px; height: 96px; border-radius: 4px; background: #ddd; font-size: 0.7rem;
             display: flex; align-items: center; justify-content: center; text-align: center; }
  .face { width: 150px; font-size: 0.8rem; }
  button { margin-top: 0.3rem; cursor: pointer; }
  #status { min-height: 1.4rem; font-weight: 600; }
  #status.error { color: #a00; }
</style>
</head>
<body>
<h1>Face library</h1>
<p id="status" role="status"></p>
<section>
  <h2>Add a person</h2>
  <label>Name <input id="new-name" maxlength="64"></label>
  <label>Photo <input id="new-photo" type="file" accept="image/jpeg,image/png"></label>
  <button id="add-person">Add</button>
</section>
<h2>People</h2>
<div id="people" class="grid"></div>
<h2>Recent unknown faces</h2>
<div id="unknown" class="grid"></div>
<h2>Recent matches</h2>
<div id="matches" class="grid"></div>
<script>
"use strict";
let people = [];

function csrf() {
  const found = document.cookie.split("; ").find(c => c.startsWith("streamrec_csrf="));
  return found ? decodeURIComponent(found.split("=")[1]) : "";
}

function say(text, error) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = error ? "error" : "";
}

async function change(method, url, body, type) {
  const headers = {"X-CSRF-Token": csrf()};
  if (type) headers["Content-Type"] = type;
  const reply = await fetch(url, {method, headers, body, credentials: "same-origin"});
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(data.error || ("HTTP " + reply.status));
  return data;
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function when(ts) { return new Date(ts * 1000).toLocaleString(); }

async function act(work, done) {
  let message, error = false;
  try { message = done(await work()); } catch (e) { message = e.message; error = true; }
  await refresh();  // the page shows the change before it says it is done
  say(message, error);
}

function upload(url, file) {
  return change("POST", url, file, file.type || "application/octet-stream");
}

function personCard(person) {
  const card = el("div", undefined, "card person");
  card.dataset.person = person.id;
  const title = el("strong", person.name);
  const facts = el("span", " (" + person.id + ", " + person.embeddings + " embeddings, " + person.negatives + " negatives)");
  card.append(title, facts);
  const photos = el("div", undefined, "photos");
  for (const photo of person.photos) {
    const box = el("div");
    if (photo.served) {
      const img = el("img");
      img.alt = person.name;
      img.src = "/api/faces/" + person.id + "/photos/" + photo.id;
      box.append(img);
    } else {
      box.append(el("div", photo.image, "nophoto"));
    }
    const remove = el("button", "Remove photo");
    remove.onclick = () => act(() => change("DELETE", "/api/faces/" + person.id + "/photos/" + photo.id),
                               () => "Removed a photo of " + person.name);
    box.append(remove);
    photos.append(box);
  }
  card.append(photos);
  const file = el("input");
  file.type = "file";
  file.accept = "image/jpeg,image/png";
  file.className = "add-photo";
  file.onchange = () => file.files.length && act(() => upload("/api/faces/" + person.id + "/photos", file.files[0]),
                                                  () => "Added a photo of " + person.name);
  const erase = el("button", "Delete person");
  erase.className = "delete-person";
  erase.onclick = () => {
    if (!confirm("Delete " + person.name + " and everything kept about them?")) return;
    act(() => change("DELETE", "/api/faces/" + person.id), () => "Deleted " + person.name);
  };
  card.append(el("span", "Add a photo: "), file, el("br"), erase);
  return card;
}

function faceCard(face, kind) {
  const card = el("div", undefined, "card face");
  card.dataset.face = face.id;
  const img = el("img");
  img.alt = kind === "unknown" ? "unknown face" : (face.name || "");
  img.src = "/api/" + (kind === "unknown" ? "unknown/" : "feedback/") + face.id + ".jpg";
  card.append(img);
  if (kind === "match") card.append(el("div", face.name || ""));
  card.append(el("div", when(face.ts)), el("div", face.source + ", track " + face.track_id));
  if (kind === "unknown") {
    const choose = el("select");
    for (const person of people) {
      const option = el("option", person.name);
      option.value = person.id;
      choose.append(option);
    }
    const assign = el("button", "This is...");
    assign.className = "assign";
    assign.disabled = !people.length;
    assign.onclick = () => act(() => change("POST", "/api/unknown/" + face.id + "/assign",
                                            JSON.stringify({person_id: choose.value}), "application/json"),
                               () => "Enrolled the face for " + choose.selectedOptions[0].textContent);
    card.append(choose, assign);
  } else {
    const wrong = el("button", "Not this person");
    wrong.className = "not-this-person";
    wrong.onclick = () => act(() => change("POST", "/api/feedback", JSON.stringify({face: face.id}), "application/json"),
                              () => "Marked: not " + (face.name || ""));
    card.append(wrong);
  }
  return card;
}

async function refresh() {
  const [list, unknown, matches] = await Promise.all(
    ["/api/faces", "/api/unknown", "/api/feedback"].map(url => fetch(url, {credentials: "same-origin"}).then(r => r.json())));
  people = list.people || [];
  document.getElementById("people").replaceChildren(...people.map(personCard));
  document.getElementById("unknown").replaceChildren(...(unknown.faces || []).map(f => faceCard(f, "unknown")));
  document.getElementById("matches").replaceChildren(...(matches.faces || []).map(f => faceCard(f, "match")));
}

document.getElementById("add-person").onclick = () => {
  const name = document.getElementById("new-name").value;
  const file = document.getElementById("new-photo").files[0];
  if (!file) { say("Choose a photo first", true); return; }
  act(() => upload("/api/faces?name=" + encodeURIComponent(name), file),
      result => (result.created ? "Added " : "Added a photo of ") + result.person.name);
};
refresh();
setInterval(refresh, 5000);
</script>
</body>
</html>
"""
