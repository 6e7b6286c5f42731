// Reading a page aloud with the browser's own speech synthesis: no server, no cost.
//
// A page card carries a "read aloud" button with the story's language (en-US, ko-KR) and
// the selectors of what to read. The buttons stay hidden unless this browser can speak
// (the <html> element gets the class "can-speak"), so nothing breaks where it cannot.
// Clicks are caught on the document, so pages htmx swaps in later work the same way.
(function () {
  "use strict";
  var synth = window.speechSynthesis;
  if (!synth || typeof window.SpeechSynthesisUtterance !== "function") return;
  document.documentElement.classList.add("can-speak");

  var speaking = null; // the button whose page is being read

  function voiceFor(lang) {
    var voices = synth.getVoices() || [];
    var wanted = lang.toLowerCase();
    var base = wanted.split("-")[0];
    var exact = null, near = null;
    for (var i = 0; i < voices.length; i++) {
      var voiceLang = (voices[i].lang || "").toLowerCase().replace("_", "-");
      if (voiceLang === wanted && !exact) exact = voices[i];
      if (voiceLang.split("-")[0] === base && !near) near = voices[i];
    }
    return exact || near;
  }

  function textOf(button) {
    var card = button.closest("[data-read-aloud]") || document;
    var parts = [];
    (button.dataset.read || "").split(",").forEach(function (selector) {
      var element = selector && card.querySelector(selector.trim());
      var text = element ? element.textContent.trim() : "";
      if (text) parts.push(text);
    });
    return parts.join("\n\n");
  }

  function show(button, reading) {
    button.textContent = reading ? button.dataset.stopLabel : button.dataset.readLabel;
    button.setAttribute("aria-pressed", reading ? "true" : "false");
  }

  function stop() {
    if (speaking) show(speaking, false);
    speaking = null;
    synth.cancel();
  }

  function read(button) {
    var text = textOf(button);
    if (!text) return;
    var utterance = new window.SpeechSynthesisUtterance(text);
    utterance.lang = button.dataset.lang || document.documentElement.lang || "en-US";
    var voice = voiceFor(utterance.lang);
    if (voice) utterance.voice = voice;
    utterance.onend = utterance.onerror = function () {
      if (speaking === button) {
        show(button, false);
        speaking = null;
      }
    };
    speaking = button;
    show(button, true);
    synth.speak(utterance);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.read-aloud");
    if (!button) return;
    event.preventDefault();
    var wasThis = speaking === button;
    stop();
    if (!wasThis) read(button);
  });
  // Leaving the page (or swapping the page list) must not leave the browser talking.
  window.addEventListener("pagehide", stop);
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (speaking && event.detail && event.detail.target && event.detail.target.contains(speaking)) stop();
  });
  // Some browsers load their voices late; asking once makes them start loading.
  synth.getVoices();
})();
