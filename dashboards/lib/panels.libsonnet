// Small Grafana helpers (grafonnet cannot be fetched here): panels, targets, variables, and a
// dashboard constructor that numbers panels and lays them out left to right, top to bottom,
// on Grafana's 24-column grid.
local datasource = { type: 'prometheus', uid: '${datasource}' };

{
  // One PromQL query. `instant` for tables of current values.
  target(expr, legend='', instant=false):: {
    datasource: datasource,
    expr: expr,
    legendFormat: legend,
    instant: instant,
    range: !instant,
    [if instant then 'format']: 'table',
  },

  local panel(type, title, targets, description, width, height) = {
    type: type,
    title: title,
    description: description,
    datasource: datasource,
    targets: [
      targets[i] { refId: std.char(std.codepoint('A') + i) }
      for i in std.range(0, std.length(targets) - 1)
    ],
    gridPos: { w: width, h: height },
  },

  timeseries(title, targets, unit='short', description='', width=8, height=7, stack=false, min=null)::
    panel('timeseries', title, targets, description, width, height) {
      fieldConfig: {
        defaults: {
          unit: unit,
          [if min != null then 'min']: min,
          custom: {
            lineWidth: 1,
            fillOpacity: if stack then 30 else 10,
            showPoints: 'never',
            stacking: { mode: if stack then 'normal' else 'none' },
          },
        },
        overrides: [],
      },
      options: {
        legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
        tooltip: { mode: 'multi', sort: 'desc' },
      },
    },

  // A single number. `mappings` turns values into words (e.g. 1 -> "yes"); `steps` colours
  // the value: [{ color, value }] with the first value null.
  stat(title, targets, unit='short', description='', width=4, height=4, mappings=[], steps=null)::
    panel('stat', title, targets, description, width, height) {
      fieldConfig: {
        defaults: {
          unit: unit,
          mappings: mappings,
          thresholds: {
            mode: 'absolute',
            steps: if steps != null then steps else [{ color: 'green', value: null }],
          },
        },
        overrides: [],
      },
      options: {
        colorMode: 'value',
        graphMode: 'area',
        justifyMode: 'auto',
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        textMode: 'auto',
      },
    },

  // Current values as rows; `hide` drops columns such as __name__ and job.
  table(title, targets, unit='short', description='', width=12, height=8, hide=['Time', '__name__', 'job', 'instance', 'pod', 'namespace', 'service', 'endpoint', 'container'])::
    panel('table', title, targets, description, width, height) {
      fieldConfig: { defaults: { unit: unit }, overrides: [] },
      options: { showHeader: true, sortBy: [{ displayName: 'Value', desc: true }] },
      transformations: [
        { id: 'merge', options: {} },
        { id: 'organize', options: { excludeByName: { [name]: true for name in hide } } },
      ],
    },

  row(title):: { type: 'row', title: title, collapsed: false, panels: [], gridPos: { w: 24, h: 1 } },

  // Value mapping for 0/1 gauges: words for both values, green for the good one.
  boolMapping(zero, one, good=1):: [{
    type: 'value',
    options: {
      '0': { text: zero, color: if good == 0 then 'green' else 'red', index: 0 },
      '1': { text: one, color: if good == 1 then 'green' else 'red', index: 1 },
    },
  }],

  datasourceVariable():: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    current: {},
    hide: 0,
    refresh: 1,
    regex: '',
  },

  // A label_values() variable; "All" matches every value, and series without the label.
  queryVariable(name, label, query, refresh, multi=true):: {
    name: name,
    label: label,
    type: 'query',
    datasource: datasource,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    definition: query,
    current: {},
    hide: 0,
    includeAll: true,
    allValue: '.*',
    multi: multi,
    refresh: refresh,
    regex: '',
    sort: 1,
  },

  // Places panels in rows of 24 columns: a panel that does not fit on the current line, and
  // every row header, starts a new line. Ids follow the order of the list.
  local layout(panels) =
    std.foldl(
      function(acc, p)
        local fits = acc.x + p.gridPos.w <= 24 && p.type != 'row';
        local x = if fits then acc.x else 0;
        local y = if fits then acc.y else acc.y + acc.lineHeight;
        acc {
          panels+: [p { id: std.length(acc.panels) + 1, gridPos+: { x: x, y: y } }],
          x: x + p.gridPos.w,
          y: y,
          lineHeight: if fits then std.max(acc.lineHeight, p.gridPos.h) else p.gridPos.h,
        },
      panels,
      { panels: [], x: 0, y: 0, lineHeight: 0 },
    ).panels,

  dashboard(uid, title, description, tags, variables, panels):: {
    uid: uid,
    title: title,
    description: description,
    tags: tags,
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    timezone: 'browser',
    annotations: { list: [] },
    links: [],
    templating: { list: variables },
    panels: layout(panels),
  },
}
