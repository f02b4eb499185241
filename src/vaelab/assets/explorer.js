"use strict";
(function () {
  // Bernoulli logits -> probabilities; continuous Bernoulli logits -> its mean
  // sigmoid(l) / tanh(l / 2) - 1 / l (1/2 + l / 12 near 0); Gaussian means as they are.
  function pixelMean(kind, l) {
    if (kind === "sigmoid") return 1 / (1 + Math.exp(-l));
    if (kind === "cb_mean") {
      if (Math.abs(l) < 1e-3) return 0.5 + l / 12;
      return 1 / (1 + Math.exp(-l)) / Math.tanh(l / 2) - 1 / l;
    }
    return l;
  }

  const data = JSON.parse(document.getElementById("vaelab-data").textContent);
  const D = data.latent_dim;
  const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  function bytes(b64) {
    const s = atob(b64);
    const u = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
    return u;
  }
  function f32(b64) {  // little-endian float32 on any host
    const u = bytes(b64);
    if (LITTLE) return new Float32Array(u.buffer);
    const dv = new DataView(u.buffer), out = new Float32Array(u.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
    return out;
  }

  // erf to ~1e-15: series erf(x) = 2/sqrt(pi) e^{-x^2} sum 2^n x^{2n+1} / (2n+1)!! for |x| < 2.5,
  // continued fraction of erfc beyond (Abramowitz & Stegun 7.1.6 and 7.1.14).
  function erf(x) {
    const ax = Math.abs(x);
    let r;
    if (ax < 2.5) {
      const x2 = ax * ax;
      let term = ax, sum = ax;
      for (let n = 1; n < 200; n++) {
        term *= (2 * x2) / (2 * n + 1);
        sum += term;
        if (term < 1e-17 * sum) break;
      }
      r = (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
    } else if (ax < 6) {
      let f = ax;
      for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
      r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
    } else r = 1;
    return x < 0 ? -r : r;
  }
  const ACTIVATIONS = {  // exactly torch's definitions
    relu: () => (x) => (x > 0 ? x : 0),
    tanh: () => Math.tanh,
    elu: (l) => (x) => (x > 0 ? x : l.alpha * Math.expm1(x)),
    leaky_relu: (l) => (x) => (x > 0 ? x : l.slope * x),
    softplus: (l) => (x) =>
      (x * l.beta > l.threshold ? x : Math.log1p(Math.exp(l.beta * x)) / l.beta),
    gelu: (l) => l.approximate === "tanh"
      ? (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))
      : (x) => 0.5 * x * (1 + erf(x * Math.SQRT1_2)),
  };
  const layers = data.layers.map(function (l) {
    if (l.type === "linear") {
      return { type: l.type, shape: l.shape, W: f32(l.weight), b: l.bias ? f32(l.bias) : null };
    }
    if (!(l.type in ACTIVATIONS)) throw new Error("vaelab explorer: unknown layer " + l.type);
    return { type: l.type, f: ACTIVATIONS[l.type](l) };
  });

  function decode(zArray) {  // the mean of p(x|z) at one z: Float32Array(C*H*W)
    if (zArray.length !== D) {
      throw new Error("decode: z needs " + D + " values, got " + zArray.length);
    }
    let h = Float64Array.from(zArray, Number);
    for (const l of layers) {
      if (l.type === "linear") {
        const nOut = l.shape[0], nIn = l.shape[1], W = l.W, b = l.b;
        const o = new Float64Array(nOut);
        for (let i = 0; i < nOut; i++) {
          let s = b ? b[i] : 0;
          const row = i * nIn;
          for (let j = 0; j < nIn; j++) s += W[row + j] * h[j];
          o[i] = s;
        }
        h = o;
      } else {
        for (let i = 0; i < h.length; i++) h[i] = l.f(h[i]);
      }
    }
    const out = new Float32Array(h.length);
    const kind = data.output;  // how outputs become pixel means: see pixelMean
    for (let i = 0; i < h.length; i++) out[i] = pixelMean(kind, h[i]);
    return out;
  }

  // --- state: the full z; the plane shows its projection ---
  const P = data.plane, origin = P.origin, ax1 = P.axes[0], ax2 = P.axes[1];
  let z = Float64Array.from(data.start);
  function toPlane(v) {  // (a, b) and the distance of v from the plane
    let a = 0, b = 0;
    for (let d = 0; d < D; d++) {
      a += (v[d] - origin[d]) * ax1[d];
      b += (v[d] - origin[d]) * ax2[d];
    }
    let r2 = 0;
    for (let d = 0; d < D; d++) {
      const e = v[d] - origin[d] - a * ax1[d] - b * ax2[d];
      r2 += e * e;
    }
    return [a, b, Math.sqrt(r2)];
  }
  function fromPlane(a, b) {
    const v = new Float64Array(D);
    for (let d = 0; d < D; d++) v[d] = origin[d] + a * ax1[d] + b * ax2[d];
    return v;
  }

  // --- image: pixel (r, c) is an s x s block (s = 10 for 28x28), channels first in p ---
  const IMG = data.image || [1, 28, 28], CH = IMG[0], H = IMG[1], W = IMG[2];
  const s = Math.max(1, Math.floor(280 / Math.max(H, W)));
  const digit = document.getElementById("digit");
  digit.width = W * s; digit.height = H * s;
  digit.style.maxWidth = W * s + "px";  // CSS: its column's width, up to 10 px a pixel
  const dctx = digit.getContext("2d", { willReadFrequently: true });
  const img = dctx.createImageData(W * s, H * s);
  function byte(v) { return Math.round(255 * Math.min(1, Math.max(0, v))); }
  function drawDigit(p) {
    const px = img.data, plane = H * W;
    for (let r = 0; r < H; r++) for (let c = 0; c < W; c++) {
      const i = W * r + c;
      const red = byte(p[i]);
      const green = CH === 3 ? byte(p[plane + i]) : red, blue = CH === 3 ? byte(p[2 * plane + i]) : red;
      for (let dy = 0; dy < s; dy++) for (let dx = 0; dx < s; dx++) {
        const k = 4 * ((s * r + dy) * W * s + s * c + dx);
        px[k] = red; px[k + 1] = green; px[k + 2] = blue;
        px[k + 3] = 255;
      }
    }
    dctx.putImageData(img, 0, 0);
  }

  // --- plane: dots drawn once into a background canvas, then the marker on top ---
  const plane = document.getElementById("plane");
  const S = 480, DPR = window.devicePixelRatio || 1;
  plane.width = Math.round(S * DPR); plane.height = Math.round(S * DPR);
  const [x0, x1, y0, y1] = P.extent;
  const toPx = (a, b) => [((a - x0) / (x1 - x0)) * S, ((y1 - b) / (y1 - y0)) * S];
  const fromPx = (px, py) => [x0 + (px / S) * (x1 - x0), y1 - (py / S) * (y1 - y0)];
  const bg = document.createElement("canvas");
  bg.width = plane.width; bg.height = plane.height;
  (function drawBackground() {
    const g = bg.getContext("2d");
    g.scale(DPR, DPR);
    g.fillStyle = "#fff"; g.fillRect(0, 0, S, S);
    const span = x1 - x0, raw = span / 8, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    g.font = "11px system-ui, sans-serif"; g.lineWidth = 1;
    for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) {
      const [px] = toPx(t, 0);
      g.strokeStyle = Math.abs(t) < step / 2 ? "#999" : "#eee";
      g.beginPath(); g.moveTo(px, 0); g.lineTo(px, S); g.stroke();
      g.fillStyle = "#888";
      if (px > 24 && px < S - 60) g.fillText(+t.toFixed(6) + "", px + 2, S - 4);
    }
    for (let t = Math.ceil(y0 / step) * step; t <= y1; t += step) {
      const [, py] = toPx(0, t);
      g.strokeStyle = Math.abs(t) < step / 2 ? "#999" : "#eee";
      g.beginPath(); g.moveTo(0, py); g.lineTo(S, py); g.stroke();
      g.fillStyle = "#888";
      if (py > 70 && py < S - 24) g.fillText(+t.toFixed(6) + "", 3, py - 3);
    }
    const xy = data.points.n ? f32(data.points.xy) : new Float32Array(0);
    const lab = data.points.n ? bytes(data.points.labels) : new Uint8Array(0);
    g.globalAlpha = 0.65;
    for (let i = 0; i < data.points.n; i++) {
      const [px, py] = toPx(xy[2 * i], xy[2 * i + 1]);
      g.fillStyle = lab[i] === 255 ? "#4c5a99" : data.colours[lab[i] % 10];  // 255: unlabelled
      g.beginPath(); g.arc(px, py, 2.4, 0, 2 * Math.PI); g.fill();
    }
    g.globalAlpha = 1; g.fillStyle = "#333"; g.font = "bold 12px system-ui, sans-serif";
    const ex = P.explained;
    const lx = P.labels[0] + (ex ? " (" + (100 * ex[0]).toFixed(0) + "%)" : "");
    const ly = P.labels[1] + (ex ? " (" + (100 * ex[1]).toFixed(0) + "%)" : "");
    g.fillText(lx + " \u2192", S - g.measureText(lx + " \u2192").width - 6, S - 18);
    g.save(); g.translate(18, g.measureText(ly + " \u2192").width + 6); g.rotate(-Math.PI / 2);
    g.fillText(ly + " \u2192", 0, 0); g.restore();
  })();
  const pctx = plane.getContext("2d");
  function drawPlane() {
    pctx.setTransform(1, 0, 0, 1, 0, 0);
    pctx.drawImage(bg, 0, 0);
    pctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    const [a, b, r] = toPlane(z);
    const [px, py] = toPx(a, b);
    pctx.lineWidth = 2; pctx.strokeStyle = "#000";
    pctx.beginPath(); pctx.arc(px, py, 7, 0, 2 * Math.PI); pctx.stroke();
    pctx.beginPath();
    for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {  // crosshair
      pctx.moveTo(px + 4 * dx, py + 4 * dy);
      pctx.lineTo(px + 12 * dx, py + 12 * dy);
    }
    pctx.stroke();
    if (r <= 1e-6) {  // a filled centre: z lies on the plane; hollow: this is its projection
      pctx.fillStyle = "#000";
      pctx.beginPath(); pctx.arc(px, py, 2.5, 0, 2 * Math.PI); pctx.fill();
    }
  }

  // --- sliders: one per latent dimension ---
  const sliders = [], outputs = [];
  const box = document.getElementById("sliders");
  for (let d = 0; d < D; d++) {
    const label = document.createElement("label");
    const name = document.createElement("span");
    name.textContent = "z" + (d + 1);
    const s = document.createElement("input");
    s.type = "range"; s.id = "z" + (d + 1);
    s.min = data.sliders.lo[d]; s.max = data.sliders.hi[d]; s.step = data.sliders.step;
    const o = document.createElement("output");
    s.addEventListener("input", function () { z[d] = parseFloat(s.value); update(); });
    label.append(name, s, o); box.append(label);
    sliders.push(s); outputs.push(o);
  }

  const text = document.getElementById("zvalues");
  function update() {
    drawDigit(decode(z));
    drawPlane();
    for (let d = 0; d < D; d++) {
      sliders[d].value = z[d];  // the browser clamps to the slider's range and snaps to its step
      outputs[d].value = z[d].toFixed(2);
    }
    const [a, b, r] = toPlane(z);
    let t = "z = (" + Array.from(z, (v) => v.toFixed(3)).join(", ") + ")";
    if (D > 2) {
      t += "\n(a, b) on the plane = (" + a.toFixed(3) + ", " + b.toFixed(3) + ")";
      t += ", distance from the plane " + r.toFixed(3);
    }
    text.textContent = t;
  }

  let dragging = false;
  function moveTo(e) {
    const rect = plane.getBoundingClientRect();
    const [a, b] = fromPx(((e.clientX - rect.left - plane.clientLeft) / plane.clientWidth) * S,
                          ((e.clientY - rect.top - plane.clientTop) / plane.clientHeight) * S);
    z = fromPlane(a, b);
    update();
  }
  plane.addEventListener("pointerdown", function (e) {
    dragging = true; plane.setPointerCapture(e.pointerId); moveTo(e); e.preventDefault();
  });
  plane.addEventListener("pointermove", function (e) { if (dragging) moveTo(e); });
  plane.addEventListener("pointerup", function () { dragging = false; });
  plane.addEventListener("pointercancel", function () { dragging = false; });
  document.getElementById("reset").addEventListener("click", function () {
    z = Float64Array.from(data.start);
    update();
  });
  const prior = document.getElementById("prior");
  if (prior) prior.addEventListener("click", function () {
    for (let d = 0; d < D; d++) {  // Box-Muller
      z[d] = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
    }
    update();
  });

  window.vaelab = {
    latentDim: D,
    digitCanvas: "digit",
    planeCanvas: "plane",
    decode: (zArray) => decode(Array.from(zArray)),
    getLatent: () => Array.from(z),
    setLatent: function (zArray) {
      const v = Float64Array.from(zArray, Number);
      if (v.length !== D || !v.every(Number.isFinite)) {
        throw new Error("setLatent: z needs " + D + " finite values");
      }
      z = v; update();
    },
  };
  update();
})();
