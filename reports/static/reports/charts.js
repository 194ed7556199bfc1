// Report and dashboard charts: each element with data-chart="<id>" is drawn from the JSON
// of <script type="application/json" id="<id>"> ({x, series: [{name, type, data, axis}]}).
// No inline script (the Content-Security-Policy allows scripts from our origin only).
(function () {
  "use strict";
  function draw(el) {
    var spec = JSON.parse(document.getElementById(el.dataset.chart).textContent);
    var axes = spec.series.some(function (s) { return s.axis === 1; }) ? 2 : 1;
    var yAxis = [];
    for (var i = 0; i < axes; i++) { yAxis.push({ type: "value", name: spec.series.filter(function (s) { return (s.axis || 0) === i; }).map(function (s) { return s.name; }).join(" / ") }); }
    var chart = echarts.init(el);
    chart.setOption({
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 60, right: axes > 1 ? 60 : 20, top: 40, bottom: 40 },
      xAxis: { type: "category", data: spec.x },
      yAxis: yAxis,
      series: spec.series.map(function (s) {
        return { name: s.name, type: s.type || "bar", data: s.data, yAxisIndex: s.axis || 0 };
      })
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(draw);
  });
})();
