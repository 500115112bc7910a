// Project page: stacked bars of phase seconds per finished build (Chart.js).
document.addEventListener("DOMContentLoaded", function () {
  var canvas = document.getElementById("trend-chart");
  var source = document.getElementById("trend-data");
  if (!canvas || !source || !window.Chart) return;
  var points = JSON.parse(source.textContent);
  var L = window.FERRY_TREND_LABELS || {};
  var colours = { source: "#7c3aed", dependencies: "#0e9384", build: "#2563eb", push: "#dc6803" };
  var phases = ["source", "dependencies", "build", "push"];
  var labels = points.map(function (p) {
    var cache = p.warm === true ? L.warm : (p.warm === false ? L.cold : "");
    return "#" + p.number + (cache ? " (" + cache + ")" : "");
  });
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: labels,
      datasets: phases.map(function (name) {
        return {
          label: L[name] || name,
          data: points.map(function (p) { return p[name] || 0; }),
          backgroundColor: colours[name],
          stack: "phases",
          maxBarThickness: 48
        };
      })
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: L.seconds } } }
    }
  });
});
