/* The console's scanner: the phone camera into a canvas, decoded with jsQR; a found code is looked up at once. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var video = document.getElementById("camera");
    var canvas = document.getElementById("frame");
    var state = document.getElementById("camera-state");
    var form = document.getElementById("scan-form");
    var input = document.getElementById("code");
    if (!video || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.jsQR) {
      if (state) state.textContent = state.dataset.unavailable || "Camera unavailable: type the code.";
      return;
    }
    var context = canvas.getContext("2d", {willReadFrequently: true});
    var lastCode = "", lastAt = 0;

    function submit(code) {
      input.value = code;
      if (window.htmx) window.htmx.trigger(form, "submit"); else form.submit();
    }

    function scanFrame() {
      if (video.readyState === video.HAVE_ENOUGH_DATA) {
        canvas.width = video.videoWidth; canvas.height = video.videoHeight;
        context.drawImage(video, 0, 0, canvas.width, canvas.height);
        var image = context.getImageData(0, 0, canvas.width, canvas.height);
        var found = window.jsQR(image.data, image.width, image.height, {inversionAttempts: "dontInvert"});
        // The same code seen again within 5 s is the same scan, not a second one.
        if (found && found.data && (found.data !== lastCode || Date.now() - lastAt > 5000)) {
          lastCode = found.data; lastAt = Date.now();
          submit(found.data);
        }
      }
      requestAnimationFrame(scanFrame);
    }

    navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}, audio: false})
      .then(function (stream) {
        video.srcObject = stream;
        video.play();
        requestAnimationFrame(scanFrame);
      })
      .catch(function () {
        state.textContent = state.dataset.unavailable || "Camera unavailable: type the code.";
      });
  });
})();
