// Render the formulas that pymdownx.arithmatex marks (\( ... \) inline, \[ ... \] display).
function vaelabRenderMath() {
  for (const el of document.querySelectorAll(".arithmatex")) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: true,
    });
  }
}
if (typeof document$ !== "undefined") {
  document$.subscribe(vaelabRenderMath); // Material's instant loading
} else {
  document.addEventListener("DOMContentLoaded", vaelabRenderMath);
}
