// video-emotion web page: plain JavaScript, no external library, nothing fetched from the internet.
"use strict";

const COLORS = { angry: "#d62728", disgust: "#8c564b", fear: "#9467bd", happy: "#f2b701",
                 sad: "#1f77b4", surprise: "#17becf", neutral: "#9e9e9e" };
const SENT_COLORS = { positive: "#3aa655", neutral: "#b8bcc4", negative: "#d9534f" };
const UI = {
  en: { dominant: "Dominant emotion", sentiment: "Sentiment", score: "score", tags: "Tags", model: "Model",
        distribution: "Distribution", noFace: "No face was found in this video: no emotion is reported.",
        unreadable: "unreadable", noneRead: "Faces were found, but none could be read (too small, blurred or turned away): no emotion is reported.",
        unreadableNote: "s with faces too poor to read are marked unreadable and left out of this summary.",
        uploading: "Uploading", analysing: "Analysing…", badKey: "The API key is missing or wrong.",
        needKey: "Enter your API key first.", needVideo: "Choose a video or audio file first.",
        network: "The service could not be reached.", caption: "Emotion probabilities over time (stacked) with the sentiment band below. Click to seek.",
        start: "start (s)", end: "end (s)", emotion: "emotion", confidence: "confidence", sentimentCol: "sentiment",
        text: "Transcript sentiment", combined: "Face + words", positive: "positive", neutral: "neutral", negative: "negative",
        help: "Your API key stays in this browser tab only (session storage).", key: "API key", video: "Video or audio file",
        transcript: "Transcript (optional: .txt, .srt, .vtt)", drop: "or drop a video or a recording (and a transcript) here",
        fps: "Frames analysed per second", lang: "Language", go: "Analyse", result: "Result",
        dljson: "Download JSON", dlcsv: "Download CSV", table: "Timeline as a table",
        faces: "Faces (the largest drives the timeline above)", face: "Face",
        noPlay: "This browser cannot play the clip's codec (e.g. MPEG-4 Part 2 from OpenCV); the analysis below is complete, and the chart still works.",
        transcribe: "Speech recognition", transcribeAuto: "on (when no transcript is given)", transcribeOff: "off",
        speechLang: "Spoken language", detect: "detect", words: "Words (click a line to play from there)",
        fromAsr: "Words from speech recognition", fromUser: "Words from your transcript", detected: "detected",
        given: "as chosen", noScore: "no word sentiment for this language",
        speech_no_speech: "No words: no speech was heard.", speech_no_audio: "No words: the video has no audio track.",
        speech_off: "No words: speech recognition was off and no transcript was given.",
        speech_unavailable: "No words: speech recognition is not available on this server.",
        speech_failed: "No words: the audio track could not be read.",
        endsEarly: "The video ends at {d} s of the {h} s its file states (cut short or damaged): the part that could be decoded was analysed.",
        combinedVoice: "Voice + words", combinedBoth: "Face and voice + words",
        voiceOpt: "Voice emotion", voiceAuto: "on", voiceOff: "off", voiceTitle: "Voice (how it was said)", voiceCard: "Voice",
        noSpeech: "no speech", sources: "Read from", faceShare: "face", voiceShare: "voice",
        voiceAlone: "No face could be read: the emotion above is the voice's alone.",
        audioOnly: "An audio file: no face to read. The voice and the words are shown.",
        audioNothing: "An audio file with no face, and no emotion in its voice (see the voice row): no emotion is reported.",
        voiceWindows: "Voice over time", voiceRead: "read in {n} of {m} windows",
        voice_off: "The voice was not read (voice emotion off).", voice_no_model: "This model does not read voices.",
        voice_no_audio: "No voice: there is no audio track.", voice_no_speech: "No speech was heard: no voice emotion.",
        voice_unavailable: "The voice cannot be read on this server (no speech model).",
        voice_failed: "The audio track could not be read." },
  zh: { dominant: "主要情绪", sentiment: "情感倾向", score: "分数", tags: "标签", model: "模型",
        distribution: "情绪分布", noFace: "视频中未检测到人脸：不报告任何情绪。",
        unreadable: "无法判读", noneRead: "检测到人脸，但都无法判读（太小、模糊或侧转）：不报告任何情绪。",
        unreadableNote: " 秒的人脸质量太差，标为无法判读，不计入本摘要。",
        uploading: "上传中", analysing: "分析中…", badKey: "API 密钥缺失或错误。",
        needKey: "请先输入 API 密钥。", needVideo: "请先选择视频或音频文件。",
        network: "无法连接到服务。", caption: "随时间变化的情绪概率（堆叠）及下方的情感带。点击可跳转。",
        start: "开始 (秒)", end: "结束 (秒)", emotion: "情绪", confidence: "置信度", sentimentCol: "情感",
        text: "文本情感", combined: "人脸 + 文本", positive: "积极", neutral: "中性", negative: "消极",
        help: "API 密钥只保存在此浏览器标签页中（会话存储）。", key: "API 密钥", video: "视频或音频文件",
        transcript: "字幕/文本（可选：.txt、.srt、.vtt）", drop: "或将视频或录音（和字幕）拖放到这里",
        fps: "每秒分析帧数", lang: "语言", go: "分析", result: "结果",
        dljson: "下载 JSON", dlcsv: "下载 CSV", table: "时间轴表格",
        faces: "人脸（最大的人脸决定上方的时间轴）", face: "人脸",
        noPlay: "此浏览器无法播放该视频的编码；分析结果完整，图表仍可用于跳转。",
        transcribe: "语音识别", transcribeAuto: "开启（未提供字幕时）", transcribeOff: "关闭",
        speechLang: "说话语言", detect: "自动检测", words: "文本（点击某一行从该处播放）",
        fromAsr: "文本来自语音识别", fromUser: "文本来自您提供的字幕", detected: "自动检测",
        given: "按所选", noScore: "此语言没有文本情感分析",
        speech_no_speech: "没有文本：未听到语音。", speech_no_audio: "没有文本：视频没有音轨。",
        speech_off: "没有文本：语音识别已关闭，且未提供字幕。",
        speech_unavailable: "没有文本：此服务器不提供语音识别。",
        speech_failed: "没有文本：无法读取音轨。",
        endsEarly: "视频在 {d} 秒处结束，而文件标明的时长为 {h} 秒（文件不完整或已损坏）：已分析可解码的部分。",
        combinedVoice: "语音 + 文本", combinedBoth: "人脸和语音 + 文本",
        voiceOpt: "语音情绪", voiceAuto: "开启", voiceOff: "关闭", voiceTitle: "语音（说话的方式）", voiceCard: "语音",
        noSpeech: "无语音", sources: "判读来源", faceShare: "人脸", voiceShare: "语音",
        voiceAlone: "没有可判读的人脸：上方的情绪仅来自语音。",
        audioOnly: "音频文件：没有人脸可判读。下方显示语音和文本。",
        audioNothing: "音频文件：没有人脸，语音中也没有可判读的情绪（见语音行）：不报告任何情绪。",
        voiceWindows: "随时间变化的语音情绪", voiceRead: "{m} 个时间窗中判读了 {n} 个",
        voice_off: "未判读语音（语音情绪已关闭）。", voice_no_model: "此模型不判读语音。",
        voice_no_audio: "没有语音：没有音轨。", voice_no_speech: "未听到语音：没有语音情绪。",
        voice_unavailable: "此服务器无法判读语音（没有语音模型）。",
        voice_failed: "无法读取音轨。" },
};

const $ = (id) => document.getElementById(id);
let result = null;
let videoURL = null;

function t(key) { return (UI[$("lang").value] || UI.en)[key]; }
// Builds elements from data: text always goes in as text (never parsed as HTML), so neither the server's
// nor the user's text can add markup or script; the page's Content-Security-Policy forbids inline styles.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "vars") for (const [name, value] of Object.entries(v)) el.style.setProperty(name, value);
    else if (k.startsWith("data-")) el.dataset[k.slice(5).replace(/-(\w)/g, (_, c) => c.toUpperCase())] = v;
    else el.setAttribute(k, v);
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false).map((c) =>
    c instanceof Node ? c : String(c)));
  return el;
}
function clock(sec) { const m = Math.floor(sec / 60); return `${m}:${(sec - 60 * m).toFixed(1).padStart(4, "0")}`; }
function labelName(label) { return (result && result.label_names && result.label_names[label]) || label; }
// A window whose faces were found but are too poor to read carries `unreadable: true` and no emotion.
function segName(s) { return s.unreadable ? t("unreadable") : labelName(s.emotion); }

$("key").value = sessionStorage.getItem("ve-key") || "";
$("key").addEventListener("change", () => sessionStorage.setItem("ve-key", $("key").value.trim()));

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  box.focus && box.setAttribute("tabindex", "-1");
}
function clearError() { $("error").hidden = true; $("error").textContent = ""; }

// Drag and drop: a video file goes to the video input, a text file to the transcript input.
const drop = $("drop");
["dragenter", "dragover"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => {
  for (const file of e.dataTransfer.files) {
    const dt = new DataTransfer();
    dt.items.add(file);
    const isText = /\.(txt|srt|vtt)$/i.test(file.name) || file.type.startsWith("text/");
    (isText ? $("transcript") : $("video")).files = dt.files;
  }
});

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  clearError();
  const key = $("key").value.trim();
  const file = $("video").files[0];
  if (!key) return showError(t("needKey"));
  if (!file) return showError(t("needVideo"));
  sessionStorage.setItem("ve-key", key);
  const body = new FormData();
  body.append("video", file, file.name);
  if ($("transcript").files[0]) body.append("transcript", $("transcript").files[0]);
  if ($("fps").value) body.append("sample_fps", $("fps").value);
  body.append("lang", $("lang").value);
  body.append("transcribe", $("transcribe").value);
  body.append("voice", $("voice").value);
  if ($("speech-lang").value) body.append("speech_lang", $("speech-lang").value);

  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/analyze");
  xhr.setRequestHeader("Authorization", "Bearer " + key);
  xhr.responseType = "text";
  $("go").disabled = true;
  $("progress").hidden = false;
  $("bar").value = 0;
  $("progress-text").textContent = t("uploading");
  xhr.upload.onprogress = (ev) => {
    if (ev.lengthComputable) {
      $("bar").value = Math.round(100 * ev.loaded / ev.total);
      $("progress-text").textContent = `${t("uploading")} ${$("bar").value}%`;
    }
  };
  xhr.upload.onload = () => { $("bar").removeAttribute("value"); $("progress-text").textContent = t("analysing"); };
  xhr.onerror = () => { done(); showError(t("network")); };
  xhr.onload = () => {
    done();
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status === 401) return showError(t("badKey"));
    if (xhr.status !== 200 || !data) {
      const msg = data && data.error ? data.error : `HTTP ${xhr.status}`;
      return showError(`${xhr.status}: ${msg}`);
    }
    show(data, file);
  };
  xhr.send(body);
});

function done() { $("go").disabled = false; $("progress").hidden = true; }

function show(data, file) {
  result = data;
  $("result").hidden = false;
  if (videoURL) URL.revokeObjectURL(videoURL);
  videoURL = URL.createObjectURL(file);
  $("player-note").hidden = true;
  $("player").src = videoURL;
  const audio = result.media === "audio";    // a recording: no face row, the voice row and the words
  $("face-chart").hidden = audio;
  $("face-table").hidden = audio;
  $("player").classList.toggle("audio", audio);
  renderSummary();
  renderTable();
  renderLegend();
  renderFaces();
  renderVoice();
  renderWords();
  drawChart();
  $("chart").setAttribute("aria-label", chartDescription());
  $("chart-caption").textContent = t("caption");
  $("result").scrollIntoView({ behavior: "smooth" });
}

function chartDescription() {
  if (!result.faces_detected) return t("noFace");
  return result.timeline.map((s) => `${s.start_s.toFixed(1)}–${s.end_s.toFixed(1)} s: ${segName(s)}` +
    (s.unreadable ? "" : ` (${Math.round(100 * s.confidence)}%), ${t(s.sentiment)}`)).join("; ");
}

function renderSummary() {
  const s = result.summary;
  const box = $("summary");
  box.replaceChildren();
  const add = (title, ...content) => box.appendChild(h("div", null, h("h3", null, title), ...content));
  const m = result.model;
  const early = result.ends_early;             // a file cut short: the timeline ends where its frames end
  if (early) box.appendChild(h("p", { id: "ends-early", class: "hint" }, t("endsEarly")
    .replace("{d}", early.decoded_duration_s.toFixed(1)).replace("{h}", early.header_duration_s.toFixed(1))));
  if (!s.dominant_emotion && !result.faces_detected) {   // nothing read: no face (and no voice), said so
    add(t("dominant"), h("p", { class: "big", id: "dominant" }, "—"),
        h("p", { id: "no-face" }, result.media === "audio" ? t("audioNothing") : t("noFace")));
  } else if (!s.dominant_emotion) {          // faces found, none readable: no emotion, said so
    add(t("dominant"), h("p", { class: "big", id: "dominant", "data-label": "unreadable" }, "—"),
        h("p", { id: "unreadable-note" }, t("noneRead")));
  } else {
    add(t("dominant"), h("p", { class: "big", id: "dominant", "data-label": s.dominant_emotion }, labelName(s.dominant_emotion)),
        result.faces_detected ? null : h("p", { id: "no-face", class: "hint" }, result.media === "audio" ? t("audioOnly") : t("voiceAlone")));
    add(t("sentiment"), h("p", { class: `big sent-${s.sentiment}`, id: "sentiment", "data-sentiment": s.sentiment }, t(s.sentiment)),
        h("p", null, `${t("score")} `, h("span", { id: "score" }, s.sentiment_score.toFixed(2))));
    const dist = Object.entries(s.distribution).sort((a, b) => b[1] - a[1]).map(([k, v]) =>
      h("div", null, h("span", { class: "dist-name" }, labelName(k)),
        h("i", { vars: { "--c": COLORS[k] || "#666", "--w": `${Math.round(120 * v)}px` } }), `${Math.round(100 * v)}%`));
    add(t("distribution"), h("div", { class: "dist" }, dist));
    add(t("tags"), h("p", { id: "tags" }, s.tags.map((x) => [h("span", { class: "tag", "data-label": x }, labelName(x)), " "])),
        s.unreadable_s ? h("p", { id: "unreadable-note" }, `${s.unreadable_s.toFixed(1)} ${t("unreadableNote")}`) : null);
  }
  const tr = result.transcript;
  const src = s.sources || {};            // what the reading beside the words came from
  const both = src.voice > 0 ? (src.face > 0 ? "combinedBoth" : "combinedVoice") : "combined";
  const combined = [h("p", { id: "combined", "data-reading": both }, `${t(both)}: ${s.combined_sentiment_score === null ? "—" : s.combined_sentiment_score.toFixed(2)}`),
    h("p", { class: "hint" }, String(s.sentiment_sources))];
  if (tr) {
    const scored = tr.score !== null && tr.score !== undefined;
    add(t("text"), h("p", { id: "words-from", "data-source": tr.source }, wordsSource()),
        scored ? h("p", { class: `sent-${tr.sentiment}`, id: "text-sentiment", "data-sentiment": tr.sentiment },
                   `${t(tr.sentiment)} (${tr.score.toFixed(2)})`)
               : h("p", { class: "hint" }, t("noScore")), combined);
  } else if (result.speech) {
    add(t("text"), h("p", { id: "words-from", "data-source": "none", "data-status": result.speech.status },
                     t("speech_" + result.speech.status) || String(result.speech.status)), combined);
  }
  renderSources(add);
  add(t("model"), h("p", { id: "model" }, `${m.name} v${m.version}`));
}

// What the overall reading was read from: the face's and the voice's shares (inference.fusion), and the voice's own.
function renderSources(add) {
  const src = result.summary.sources;
  const v = result.voice;
  if (v) {
    const vs = v.summary || {};
    add(t("voiceCard"), vs.dominant_emotion
      ? h("p", { class: "big", id: "voice-dominant", "data-label": vs.dominant_emotion }, labelName(vs.dominant_emotion))
      : h("p", { id: "voice-dominant", "data-status": v.status }, t("voice_" + v.status) || String(v.status)),
      vs.dominant_emotion ? h("p", { class: `sent-${vs.sentiment}` }, `${t(vs.sentiment)} ${vs.sentiment_score.toFixed(2)}`) : null);
  }
  if (!src) return;
  const pct = (x) => `${Math.round(100 * x)}%`;
  add(t("sources"), h("p", { id: "sources", "data-face": src.face, "data-voice": src.voice },
    h("span", { class: "share", vars: { "--w": pct(src.face) } }, `${t("faceShare")} ${pct(src.face)}`), " · ",
    h("span", { class: "share voice", vars: { "--w": pct(src.voice) } }, `${t("voiceShare")} ${pct(src.voice)}`)),
    h("p", { class: "hint", id: "sources-note" }, String(src.note || "")));
}

// The voice as its own row under the face chart, on the same time axis: a window per cell, coloured by the voice's
// emotion; windows without speech are shown as such, never given an emotion. A click plays from that window.
function renderVoice() {
  const v = result.voice || { status: "no_model", timeline: [] };
  const windows = v.timeline || [];
  const dur = Math.max(result.duration_s, 0.001);
  const pct = (sec) => `${(100 * sec / dur).toFixed(3)}%`;
  $("voice-row").dataset.status = v.status;
  $("voice-track").hidden = windows.length === 0;
  $("voice-track").replaceChildren(...windows.map((w) => {
    const name = w.speech ? labelName(w.emotion) : t("noSpeech");
    const cell = h("span", {
      class: w.speech ? "vseg" : "vseg no-speech", "data-speech": String(w.speech), "data-emotion": w.emotion || "",
      "data-start": w.start_s, "data-end": w.end_s,
      title: `${w.start_s.toFixed(1)}–${w.end_s.toFixed(1)} s: ${name}` + (w.speech ? ` (${Math.round(100 * w.confidence)}%)` : ""),
      vars: { "--l": pct(w.start_s), "--w": pct(w.end_s - w.start_s), "--c": COLORS[w.emotion] || "transparent" } }, name);
    cell.addEventListener("click", () => { $("player").currentTime = w.start_s; drawChart(); markCue(); markVoice(); });
    return cell;
  }));
  $("voice-track").setAttribute("role", "img");
  $("voice-track").setAttribute("aria-label", `${t("voiceWindows")}: ` + windows.map((w) =>
    `${w.start_s.toFixed(1)}–${w.end_s.toFixed(1)} s: ${w.speech ? labelName(w.emotion) : t("noSpeech")}`).join("; "));
  const read = windows.filter((w) => w.speech).length;
  $("voice-note").textContent = v.status === "read"
    ? `${t("voiceRead").replace("{n}", read).replace("{m}", windows.length)}` : (t("voice_" + v.status) || String(v.status));
  markVoice();
}

function markVoice() {
  const now = $("player").currentTime || 0;
  for (const cell of $("voice-track").querySelectorAll(".vseg")) {
    cell.classList.toggle("now", now >= +cell.dataset.start && now < +cell.dataset.end);
  }
}

function wordsSource() {
  const tr = result.transcript;
  if (tr.source !== "asr") return t("fromUser");
  const p = tr.language_probability;
  return `${t("fromAsr")} (${tr.language}, ${p === null || p === undefined ? t("given") : `${t("detected")} ${Math.round(100 * p)}%`})`;
}

// The transcript under the chart: one line per cue, coloured by its sentiment; a click plays from there.
function renderWords() {
  const tr = result.transcript;
  const list = $("cues");
  list.replaceChildren();
  $("words").hidden = !tr;
  if (!tr) return;
  $("words-source").textContent = wordsSource();
  $("words-source").dataset.source = tr.source;
  for (const c of tr.cues) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = `cue sent-${c.sentiment || "none"}`;
    b.dataset.sentiment = c.sentiment || "";
    if (c.start_s !== null) b.dataset.start = c.start_s;
    if (c.end_s !== null) b.dataset.end = c.end_s;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = c.start_s === null ? "—" : `${clock(c.start_s)}–${clock(c.end_s)}`;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = c.text;              // as said or written: never parsed as HTML
    if (c.text_original && c.text_original !== c.text) text.title = c.text_original;  // as written, before simplification
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = c.score === null || c.score === undefined ? "" : `${t(c.sentiment)} ${c.score.toFixed(2)}`;
    b.append(when, text, score);
    b.setAttribute("aria-label", `${when.textContent}: ${c.text}${score.textContent ? " (" + score.textContent + ")" : ""}`);
    if (c.start_s !== null) b.addEventListener("click", () => { $("player").currentTime = c.start_s; drawChart(); markCue(); markVoice(); });
    li.appendChild(b);
    list.appendChild(li);
  }
  markCue();
}

function markCue() {
  const now = $("player").currentTime || 0;
  for (const b of $("cues").querySelectorAll(".cue[data-start]")) {
    b.classList.toggle("active", now >= +b.dataset.start && now < +b.dataset.end);
  }
}

function renderFaces() {
  const faces = result.faces || [];
  $("faces").hidden = faces.length < 2;
  const dur = Math.max(result.duration_s, 0.001);
  $("face-list").replaceChildren(...faces.map((f) => {
    const s = f.summary;
    const band = f.timeline.map((seg) => h("span", {
      class: "band", title: `${seg.start_s.toFixed(1)}–${seg.end_s.toFixed(1)} s: ${labelName(seg.emotion)}`,
      vars: { "--w": `${Math.max(2, Math.round(160 * (seg.end_s - seg.start_s) / dur))}px`, "--c": COLORS[seg.emotion] || "#666" } }));
    return h("div", { class: "face", "data-track": f.track, "data-dominant": s.dominant_emotion },
      h("h4", null, `${t("face")} ${f.track + 1}`),
      h("p", { class: "big" }, s.dominant_emotion ? labelName(s.dominant_emotion) : "—"),
      h("p", { class: `sent-${s.sentiment}` }, `${s.sentiment ? t(s.sentiment) : ""} ${s.sentiment_score === null ? "" : s.sentiment_score.toFixed(2)}`),
      h("div", { "aria-hidden": "true" }, band));
  }));
}

function renderLegend() {
  $("legend").replaceChildren(...result.model.labels.map((k) => h("span", { vars: { "--c": COLORS[k] || "#666" } }, labelName(k))));
}

function renderTable() {
  $("segments").querySelector("thead").replaceChildren(
    h("tr", null, ["start", "end", "emotion", "confidence", "sentimentCol"].map((k) => h("th", null, t(k)))));
  $("segments").querySelector("tbody").replaceChildren(...result.timeline.map((s) => s.unreadable ?
    h("tr", { class: "unreadable", "data-emotion": "unreadable", title: (s.quality.unreadable_because || []).join(", ") },
      h("td", null, s.start_s.toFixed(2)), h("td", null, s.end_s.toFixed(2)), h("td", null, t("unreadable")),
      h("td", null, "—"), h("td", null, "—")) :
    h("tr", { "data-emotion": s.emotion, "data-sentiment": s.sentiment },
      h("td", null, s.start_s.toFixed(2)), h("td", null, s.end_s.toFixed(2)), h("td", null, labelName(s.emotion)),
      h("td", null, `${(100 * s.confidence).toFixed(0)}%`), h("td", null, t(s.sentiment)))));
}

const PAD = { l: 40, r: 10, t: 10, b: 50 };
function drawChart() {
  const c = $("chart");
  const g = c.getContext("2d");
  const W = c.width, H = c.height;
  const plotH = H - PAD.t - PAD.b, plotW = W - PAD.l - PAD.r;
  const dur = Math.max(result.duration_s, 0.001);
  const x = (sec) => PAD.l + plotW * sec / dur;
  g.clearRect(0, 0, W, H);
  g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
  g.strokeStyle = "#d7dbe3"; g.fillStyle = "#5b6475"; g.font = "12px sans-serif";
  for (let p = 0; p <= 1.0001; p += 0.25) {
    const yy = PAD.t + plotH * (1 - p);
    g.beginPath(); g.moveTo(PAD.l, yy); g.lineTo(W - PAD.r, yy); g.stroke();
    g.fillText(`${Math.round(p * 100)}%`, 4, yy + 4);
  }
  const labels = result.model.labels;
  for (const s of result.timeline) {          // stacked probabilities per segment
    if (s.unreadable) {                        // grey: a face was there, too poor to read
      g.fillStyle = "rgba(0,0,0,0.15)";
      g.fillRect(x(s.start_s), PAD.t, Math.max(1, x(s.end_s) - x(s.start_s)), plotH);
      g.fillStyle = "#1d2330";
      if (x(s.end_s) - x(s.start_s) > 60) g.fillText(t("unreadable"), x(s.start_s) + 3, H - PAD.b + 34);
      continue;
    }
    let acc = 0;
    for (const k of labels) {
      const v = s.probabilities[k] || 0;
      g.fillStyle = COLORS[k] || "#666";
      g.fillRect(x(s.start_s), PAD.t + plotH * (1 - acc - v), Math.max(1, x(s.end_s) - x(s.start_s)), plotH * v);
      acc += v;
    }
    g.fillStyle = SENT_COLORS[s.sentiment];    // sentiment band
    g.fillRect(x(s.start_s), H - PAD.b + 6, Math.max(1, x(s.end_s) - x(s.start_s)), 14);
    g.fillStyle = "#1d2330";                   // segment label
    const w = x(s.end_s) - x(s.start_s);
    if (w > 36) g.fillText(labelName(s.emotion), x(s.start_s) + 3, H - PAD.b + 34);
  }
  for (const gap of result.no_face_segments || []) {
    g.fillStyle = "rgba(0,0,0,0.06)";
    g.fillRect(x(gap.start_s), PAD.t, x(gap.end_s) - x(gap.start_s), plotH);
  }
  g.fillStyle = "#5b6475";
  for (let sec = 0; sec <= dur; sec += Math.max(1, Math.round(dur / 10))) g.fillText(`${sec}s`, x(sec) - 6, H - 4);
  const now = $("player").currentTime || 0;   // cursor synced with the video
  g.strokeStyle = "#000"; g.lineWidth = 2;
  g.beginPath(); g.moveTo(x(now), PAD.t); g.lineTo(x(now), H - PAD.b + 20); g.stroke(); g.lineWidth = 1;
  $("chart").dataset.cursor = now.toFixed(2);
}

function seekFromEvent(ev) {
  const c = $("chart");
  const rect = c.getBoundingClientRect();
  const px = (ev.clientX - rect.left) * c.width / rect.width;
  const frac = Math.min(1, Math.max(0, (px - PAD.l) / (c.width - PAD.l - PAD.r)));
  $("player").currentTime = frac * result.duration_s;
  drawChart();
}
$("chart").addEventListener("click", (ev) => result && seekFromEvent(ev));
$("chart").addEventListener("keydown", (ev) => {   // keyboard seeking on the focused chart
  if (!result) return;
  const step = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
  if (step) { $("player").currentTime = Math.max(0, ($("player").currentTime || 0) + step); drawChart(); ev.preventDefault(); }
});
$("player").addEventListener("error", () => { $("player-note").textContent = t("noPlay"); $("player-note").hidden = false; });
$("player").addEventListener("timeupdate", () => { if (result) { drawChart(); markCue(); markVoice(); } });
$("player").addEventListener("seeked", () => result && drawChart());
function translatePage() {
  document.documentElement.lang = $("lang").value === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}
$("lang").addEventListener("change", () => { translatePage(); if (result) { renderSummary(); renderTable(); renderLegend(); renderFaces(); renderVoice(); renderWords(); drawChart(); } });

function download(name, text, type) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
}
$("dl-json").addEventListener("click", () => download("emotion-timeline.json", JSON.stringify(result, null, 2), "application/json"));
// One CSV row per timeline segment: the same columns for an upload's result and a camera session's
// (an unreadable window has empty reading cells and `unreadable` true).
// An upload's result also has the voice's reading of each window (as the CLI's CSV): an audio file, which has no face
// timeline, gets one row per voice window with its face cells empty.
function timelineCsv(res) {
  const labels = res.model.labels;
  const voice = res.voice ? res.voice.timeline || [] : null;
  const rows = [["start_s", "end_s", "emotion", "confidence", "valence", "arousal", "sentiment", ...labels.map((k) => "p_" + k),
    "unreadable", ...(voice ? ["voice_speech", "voice_emotion", "voice_confidence"] : [])].join(",")];
  const cell = (v) => (v === null || v === undefined ? "" : v);
  const heard = (start) => {
    const w = voice.find((x) => x.start_s <= start + 1e-3 && start + 1e-3 < x.end_s);
    return w ? [w.speech, w.emotion, w.confidence] : [null, null, null];
  };
  const faceless = res.media === "audio" && !res.timeline.length;
  const segs = faceless ? voice.map((w) => ({ start_s: w.start_s, end_s: w.end_s, none: true })) : res.timeline;
  for (const s of segs) rows.push([s.start_s, s.end_s, s.emotion, s.confidence, s.valence, s.arousal, s.sentiment,
    ...labels.map((k) => (s.probabilities || {})[k]), s.none ? null : !!s.unreadable, ...(voice ? heard(s.start_s) : [])]
    .map(cell).join(","));
  return rows.join("\n") + "\n";
}
$("dl-csv").addEventListener("click", () => download("emotion-timeline.csv", timelineCsv(result), "text/csv"));
