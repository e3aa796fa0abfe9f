/* The promoter center: copy the share link, share it (WeChat's menu inside WeChat, the system
   share sheet elsewhere). Without either, the page still shows the link, QR code and poster. */
(function () {
  "use strict";

  function copy(input, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = button.dataset.copied || label;
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { select(input); });
    } else {
      select(input);
      try { if (document.execCommand("copy")) done(); } catch (e) { /* the text stays selected */ }
    }
  }

  function select(input) {
    input.focus();
    input.select();
    input.setSelectionRange(0, input.value.length);
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var input = document.getElementById(button.dataset.copy);
    if (!input) return;
    input.addEventListener("focus", function () { select(input); });
    button.addEventListener("click", function () { copy(input, button); });
  });

  var dataNode = document.getElementById("share-data");
  var share = dataNode ? JSON.parse(dataNode.textContent) : null;
  if (!share) return;

  var config = document.getElementById("wx-config");
  if (config && window.wx) {
    // Inside WeChat: the server signed wx.config for this page; WeChat's own menu then shares
    // the member's link with this title and picture.
    var c = JSON.parse(config.textContent);
    wx.config({debug: false, appId: c.appId, timestamp: c.timestamp, nonceStr: c.nonceStr, signature: c.signature, jsApiList: c.jsApiList});
    wx.ready(function () {
      var friend = {title: share.title, desc: share.desc, link: share.link, imgUrl: share.imgUrl};
      var moments = {title: share.title, link: share.link, imgUrl: share.imgUrl};
      if (wx.updateAppMessageShareData) wx.updateAppMessageShareData(friend);
      if (wx.updateTimelineShareData) wx.updateTimelineShareData(moments);
      if (wx.onMenuShareAppMessage) wx.onMenuShareAppMessage(friend);
      if (wx.onMenuShareTimeline) wx.onMenuShareTimeline(moments);
    });
    return;
  }
  if (navigator.share) {
    document.querySelectorAll("[data-share]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.share({title: share.title, text: share.desc, url: share.link}).catch(function () {});
      });
    });
  }
})();
