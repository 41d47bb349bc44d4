// Plays a live grant's playlist with hls.js; says so when the gateway stops the stream.
(function () {
  "use strict";
  var video = document.getElementById("live-video");
  var status = document.getElementById("live-status");
  if (!video || !status) return;
  var src = video.getAttribute("data-src");
  function say(text) { status.textContent = text; }
  video.addEventListener("playing", function () { say("Playing."); });
  if (window.Hls && window.Hls.isSupported()) {
    var hls = new window.Hls({ enableWorker: false, liveSyncDurationCount: 1, manifestLoadingMaxRetry: 0,
                               levelLoadingMaxRetry: 0, fragLoadingMaxRetry: 0 });
    hls.on(window.Hls.Events.ERROR, function (_e, data) {
      if (!data.fatal) return;
      var code = data.response && data.response.code;
      say(code === 403 ? "The grant has ended or was revoked; the stream stopped."
        : code === 503 ? "The log or the custodians cannot answer; the stream stopped."
        : "The stream stopped (" + data.details + ").");
      hls.destroy();
      video.setAttribute("data-stopped", "1");
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = src;
  } else {
    say("This browser cannot play HLS.");
  }
})();
