// The ipywidgets HTML manager finds its icon fonts next to its own require.js module URL,
// which defaults to "<page folder>/@jupyter-widgets/html-manager/dist/". Point that URL at the
// copy this site serves (_static/offline/html-manager/), so no font request fails.
(function () {
  const here = document.currentScript.src;
  const folder = here.slice(0, here.lastIndexOf("/") + 1);
  require.config({
    paths: { "@jupyter-widgets/html-manager/dist": folder + "offline/html-manager" },
  });
})();
