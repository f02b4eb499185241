// Opened from disk (file://), a page may not read the search index: Material hides its search
// box, and this hides the header button that would open it (served over http, both stay).
if (location.protocol === "file:") {
  document.documentElement.classList.add("vaelab-from-disk");
}
