// Camera mode of the page: the camera's frames over a WebSocket to /live, each answered with a reading.
// Loaded after app.js (uses its $, t, download and timelineCsv). Content-Security-Policy friendly: no inline
// script or style, no innerHTML; server text only ever goes into textContent or onto a canvas.
"use strict";

const LIVE_UI = {
  en: { modeUpload: "Upload a video", modeCamera: "Camera (live)", liveTitle: "Camera",
        liveHelp: "The camera opens only when you press Start. Frames go to this server, are read and forgotten: nothing is stored.",
        start: "Start camera", stop: "Stop", statusLabel: "Status", stateLabel: "Emotion (last 3 s)", lagLabel: "Lag (ms)",
        liveCaption: "Last 30 s: emotion probabilities of the largest face (stacked), sentiment band below.",
        idle: "idle", opening: "opening the camera", connecting: "connecting", live: "live", stopping: "stopping",
        stopped: "stopped", refused: "refused", lost: "connection lost", noCamera: "no camera", noFace: "no face",
        unreadable: "unreadable", dljson: "Download JSON", dlcsv: "Download CSV" },
  zh: { modeUpload: "上传视频", modeCamera: "摄像头（实时）", liveTitle: "摄像头",
        liveHelp: "只有按下“开始”后才会打开摄像头。画面发送到此服务器，读取后即丢弃：不保存任何内容。",
        start: "打开摄像头", stop: "停止", statusLabel: "状态", stateLabel: "情绪（最近 3 秒）", lagLabel: "延迟（毫秒）",
        liveCaption: "最近 30 秒：最大人脸的情绪概率（堆叠），下方为情感带。",
        idle: "空闲", opening: "正在打开摄像头", connecting: "正在连接", live: "实时", stopping: "正在停止",
        stopped: "已停止", refused: "被拒绝", lost: "连接中断", noCamera: "没有摄像头", noFace: "没有人脸",
        unreadable: "无法判读", dljson: "下载 JSON", dlcsv: "下载 CSV" },
};
const LIVE_CHART_S = 30;
const LIVE_MIN_GAP_MS = 100;   // at most 10 frames a second
const LIVE_MAX_SIDE = 640;     // frames are sent at most 640 pixels on their long side

function lt(key) { return (LIVE_UI[$("lang").value] || LIVE_UI.en)[key]; }

const live = { ws: null, stream: null, ready: null, sentAt: new Map(), inFlight: null, lastSend: 0, seq: 0,
               points: [], timeline: [], result: null, timer: null, frameSize: null, stopping: false };

function liveStatus(state, reason) {
  const el = $("live-status");
  el.dataset.state = state;
  el.dataset.reason = reason || "";
  el.textContent = reason ? `${lt(state)}: ${reason}` : lt(state);
}

function liveLabel(label) {
  const names = live.ready && live.ready.label_names[$("lang").value];
  return (names && names[label]) || label;
}

function showState(state) {
  const el = $("live-state");
  const label = state ? state.emotion : "";
  if (el.dataset.label === label && el.dataset.lang === $("lang").value) return;  // unchanged: no chatter for screen readers
  el.dataset.label = label;
  el.dataset.lang = $("lang").value;
  el.textContent = state ? liveLabel(label) : "—";
}

function setMode(camera) {
  $("mode-upload").setAttribute("aria-pressed", String(!camera));
  $("mode-camera").setAttribute("aria-pressed", String(camera));
  for (const el of document.querySelectorAll(".upload-only")) el.hidden = camera;
  $("live").hidden = !camera;
  if (camera) $("result").hidden = true;
}
$("mode-upload").addEventListener("click", () => { liveStop(); setMode(false); });
$("mode-camera").addEventListener("click", () => setMode(true));

function translateLive() {
  for (const el of document.querySelectorAll("[data-i18n-live]")) el.textContent = lt(el.dataset.i18nLive);
  const st = $("live-status");
  liveStatus(st.dataset.state || "idle", st.dataset.reason);
  if (live.points.length) showState(live.points[live.points.length - 1].state);
  drawLiveChart();
}
$("lang").addEventListener("change", translateLive);

async function liveStart() {
  clearError();
  const key = $("key").value.trim();
  if (!key) return showError(t("needKey"));
  sessionStorage.setItem("ve-key", key);
  Object.assign(live, { ready: null, sentAt: new Map(), inFlight: null, lastSend: 0, seq: 0, points: [], timeline: [],
                        result: null, stopping: false });
  $("live-start").disabled = true;
  $("live-dl-json").disabled = $("live-dl-csv").disabled = true;
  $("live-latency").textContent = "—";
  showState(null);
  liveStatus("opening");
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    liveStatus("noCamera", err && err.name);
    $("live-start").disabled = false;
    return;
  }
  const video = $("live-video");
  video.srcObject = live.stream;
  await video.play().catch(() => {});
  liveStatus("connecting");
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/live`);
  live.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ key, lang: $("lang").value }));  // the key travels in the first message only
  ws.onmessage = (ev) => onLiveMessage(JSON.parse(ev.data));
  ws.onclose = (ev) => onLiveClose(ev);
  $("live-stop").disabled = false;
}

function onLiveMessage(msg) {
  if (msg.type === "ready") {
    live.ready = msg;
    liveStatus("live");
    scheduleFrame(0);
  } else if (msg.type === "reading") {
    const sent = live.sentAt.get(msg.frame);
    if (sent !== undefined) {
      $("live-latency").textContent = String(Math.round(performance.now() - sent));
      for (const k of live.sentAt.keys()) if (k <= msg.frame) live.sentAt.delete(k);
    }
    addReading(msg);
    frameAnswered(msg.frame);
  } else if (msg.type === "error") {
    if (msg.frame !== undefined) frameAnswered(msg.frame);
  } else if (msg.type === "result") {
    live.result = msg;
    $("live-dl-json").disabled = $("live-dl-csv").disabled = false;
  }
}

function onLiveClose(ev) {
  const refused = ev.code === 4401 || ev.code === 4429 || ev.code === 4415;  // key, limits, a model without faces
  if (refused) liveStatus("refused", ev.reason || String(ev.code));
  else if (live.stopping) liveStatus("stopped");
  else liveStatus("lost", ev.reason || String(ev.code));
  if (!live.result && live.timeline.length) {   // no summary from the server: the readings themselves can still be saved
    $("live-dl-json").disabled = $("live-dl-csv").disabled = false;
  }
  live.ws = null;
  stopCamera();
  clearTimeout(live.timer);
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

function frameAnswered(seq) {
  if (live.inFlight !== null && seq >= live.inFlight) {
    live.inFlight = null;
    scheduleFrame(Math.max(0, live.lastSend + LIVE_MIN_GAP_MS - performance.now()));
  }
}

function scheduleFrame(delay) {
  clearTimeout(live.timer);
  live.timer = setTimeout(sendFrame, delay);
}

// One frame in flight at a time: the next one is taken when the reading of the last one is back, so the
// lag shown is the whole round trip of a fresh frame and nothing piles up anywhere.
function sendFrame() {
  const ws = live.ws, video = $("live-video");
  if (!ws || ws.readyState !== WebSocket.OPEN || live.stopping) return;
  if (!video.videoWidth) return scheduleFrame(50);
  const scale = Math.min(1, LIVE_MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  const w = Math.round(video.videoWidth * scale), h = Math.round(video.videoHeight * scale);
  const canvas = live.canvas || (live.canvas = document.createElement("canvas"));
  canvas.width = w; canvas.height = h;
  canvas.getContext("2d").drawImage(video, 0, 0, w, h);
  live.frameSize = { w, h };
  live.inFlight = ++live.seq;
  const seq = live.seq;
  const taken = performance.now();
  canvas.toBlob((blob) => {
    if (!blob || live.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    live.sentAt.set(seq, taken);
    live.lastSend = taken;
    ws.send(blob);
  }, "image/jpeg", 0.8);
  scheduleFrame(3000);  // a frame whose reading never comes (a dropped connection) does not stall the camera
}

function addReading(msg) {
  const primary = msg.faces.find((f) => f.primary) || null;
  const read = primary && !primary.unreadable;  // an unreadable face is drawn, never charted as a guess
  const point = { t: msg.t_s, probs: read ? primary.probabilities : null, valence: read ? primary.valence : null,
                  state: msg.state };
  live.points.push(point);
  while (live.points.length && live.points[0].t < msg.t_s - LIVE_CHART_S) live.points.shift();
  if (primary) {
    const prev = live.timeline.length ? live.timeline[live.timeline.length - 1].end_s : msg.t_s;
    live.timeline.push({ start_s: prev, end_s: msg.t_s, emotion: primary.emotion, confidence: primary.confidence,
                         probabilities: primary.probabilities, valence: primary.valence, arousal: primary.arousal,
                         sentiment: primary.sentiment, unreadable: !!primary.unreadable });
  }
  showState(msg.state);
  drawOverlay(msg.faces);
  drawLiveChart();
}

function drawOverlay(faces) {
  const c = $("live-overlay");
  const size = live.frameSize || { w: 640, h: 480 };
  if (c.width !== size.w || c.height !== size.h) { c.width = size.w; c.height = size.h; }
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  g.lineWidth = 3;
  g.font = "bold 18px sans-serif";
  for (const f of faces) {
    const [x, y, w, h] = f.box;
    const colour = f.unreadable ? "#9e9e9e" : (COLORS[f.emotion] || "#2d5bd3");
    g.setLineDash(f.unreadable ? [6, 4] : []);
    g.strokeStyle = colour;
    g.strokeRect(x, y, w, h);
    const text = f.unreadable ? lt("unreadable") : `${liveLabel(f.emotion)} ${Math.round(100 * f.confidence)}%`;
    const tw = g.measureText(text).width + 8;
    g.fillStyle = colour;
    g.fillRect(x, Math.max(0, y - 24), tw, 24);
    g.fillStyle = "#fff";
    g.fillText(text, x + 4, Math.max(18, y - 6));
  }
  g.setLineDash([]);
}

function drawLiveChart() {
  const c = $("live-chart");
  const g = c.getContext("2d");
  const W = c.width, H = c.height, pad = { l: 40, r: 10, t: 10, b: 34 };
  const plotW = W - pad.l - pad.r, plotH = H - pad.t - pad.b;
  g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
  g.strokeStyle = "#d7dbe3"; g.fillStyle = "#5b6475"; g.font = "12px sans-serif";
  for (let p = 0; p <= 1.0001; p += 0.5) {
    const y = pad.t + plotH * (1 - p);
    g.beginPath(); g.moveTo(pad.l, y); g.lineTo(W - pad.r, y); g.stroke();
    g.fillText(`${Math.round(100 * p)}%`, 4, y + 4);
  }
  const pts = live.points;
  if (!pts.length) return;
  const now = pts[pts.length - 1].t;
  const x = (sec) => pad.l + plotW * (1 - (now - sec) / LIVE_CHART_S);
  const labels = (live.ready && live.ready.labels) || Object.keys(COLORS);
  for (let i = 0; i < pts.length; i++) {
    const p = pts[i];
    const x0 = x(i ? pts[i - 1].t : p.t - 0.1), w = Math.max(1, x(p.t) - x0);
    if (!p.probs) { g.fillStyle = "rgba(0,0,0,0.06)"; g.fillRect(x0, pad.t, w, plotH); continue; }
    let acc = 0;
    for (const k of labels) {
      const v = p.probs[k] || 0;
      g.fillStyle = COLORS[k] || "#666";
      g.fillRect(x0, pad.t + plotH * (1 - acc - v), w, plotH * v);
      acc += v;
    }
    g.fillStyle = SENT_COLORS[p.valence > 0.15 ? "positive" : p.valence < -0.15 ? "negative" : "neutral"];
    g.fillRect(x0, H - pad.b + 6, w, 10);
  }
  g.fillStyle = "#5b6475";
  for (let s = 0; s <= LIVE_CHART_S; s += 10) g.fillText(s ? `-${s}s` : "0", x(now - s) - 10, H - 4);
  c.dataset.points = String(pts.length);
}

function stopCamera() {
  if (live.stream) for (const track of live.stream.getTracks()) track.stop();  // the camera light goes off
  live.stream = null;
  $("live-video").srcObject = null;
}

function liveStop() {
  clearTimeout(live.timer);
  stopCamera();
  if (!live.ws) return;
  live.stopping = true;
  liveStatus("stopping");
  if (live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify({ type: "end" }));
  else live.ws.close();
  $("live-stop").disabled = true;
}

function liveResult() {
  if (live.result) { const { type, ...res } = live.result; return res; }
  return { video: "camera", source: "live", faces_detected: live.timeline.length > 0, timeline: live.timeline,
           model: { labels: (live.ready && live.ready.labels) || Object.keys(COLORS) }, summary: null,
           note: "the connection ended before the server's summary: the readings as received" };
}

$("live-start").addEventListener("click", liveStart);
$("live-stop").addEventListener("click", liveStop);
$("live-dl-json").addEventListener("click", () =>
  download("live-emotion-timeline.json", JSON.stringify(liveResult(), null, 2), "application/json"));
$("live-dl-csv").addEventListener("click", () => download("live-emotion-timeline.csv", timelineCsv(liveResult()), "text/csv"));
window.addEventListener("pagehide", () => { if (live.ws) live.ws.close(1000, "page closed"); stopCamera(); });
translateLive();
