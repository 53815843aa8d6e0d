using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using Thermo.Analysis;
using Thermo.Analysis.Engine;
using Thermo.Analysis.Physics;
using Thermo.Analysis.Run;

namespace Thermo.Pipeline.Report;

/// <summary>
/// The interactive page (Report/Page/: index.html, thermo-page.js, thermo-page.css and the charting
/// library, embedded in this assembly) and the JSON it draws, in the shapes of docs/guide/watch.md:
/// a run payload (metrics, every layer's T(e), each unit's T(e)) and a window payload (each layer's T,
/// drift and oscillation over a window; one layer's units with their rank; its MSD against lag with α).
/// <c>thermo report</c> builds them from a run's tables and inlines them into a static page;
/// <c>thermo watch</c> serves the same page and the same shapes from its API. Non-finite numbers are null.
/// </summary>
public static class PagePayload
{
    /// <summary>The embedded page files, by the name the page refers to them (and <c>thermo watch</c> serves them at /NAME).</summary>
    public static readonly IReadOnlyList<string> Assets = ["index.html", "thermo-page.js", "thermo-page.css", "echarts.min.js"];

    /// <summary>An embedded page file (<see cref="Assets"/>) as a stream; <c>ArtifactException</c> for another name.</summary>
    public static Stream Asset(string name)
    {
        if (!Assets.Contains(name)) throw new ArtifactException($"{name}: not a file of the interactive page (its files: {string.Join(", ", Assets)})");
        return typeof(PagePayload).Assembly.GetManifestResourceStream("Thermo.Page." + name)
            ?? throw new ArtifactException($"{name}: not embedded in {typeof(PagePayload).Assembly.GetName().Name} (was the page's charting library installed when it was built?)");
    }

    /// <summary>An embedded page file as text.</summary>
    public static string AssetText(string name)
    {
        using var reader = new StreamReader(Asset(name));
        return reader.ReadToEnd();
    }

    /// <summary>The content type of an embedded page file.</summary>
    public static string ContentType(string name) => Path.GetExtension(name) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    };

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
    static JsonArray Numbers(IEnumerable<double> values) => new(values.Select(Number).ToArray());
    static JsonArray Ints(IEnumerable<int> values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
    static JsonArray Strings(IEnumerable<string> values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());

    /// <summary>
    /// A run's payload (<c>GET /api/runs/{id}</c>) from its tables: metrics.parquet and
    /// analysis/instantaneous.parquet (T(e) of each layer and unit over the analysed window).
    /// With <paramref name="since"/> the arrays hold only the epochs after it.
    /// </summary>
    public static JsonObject Run(string id, RunTables r, int? since = null)
    {
        bool Kept(int epoch) => since is not { } s || epoch > s;
        // An imported run's metrics rows are its source's, mapped as thermo watch maps them (Snapshots.ImportedMetrics).
        var m = r.Metrics ?? (r.Imported ? Snapshots.ImportedMetrics(r.Run) : []);
        var epochs = m.Select(row => row.Epoch).ToArray();
        var rows = Enumerable.Range(0, epochs.Length).Where(i => Kept(epochs[i])).OrderBy(i => epochs[i]).Select(i => m[i]).ToArray();
        var metrics = new JsonObject
        {
            ["epoch"] = Ints(rows.Select(row => row.Epoch)),
            ["train_loss"] = Numbers(rows.Select(row => row.TrainLoss)),
            ["test_loss"] = Numbers(rows.Select(row => row.TestLoss)),
            ["train_accuracy"] = Numbers(rows.Select(row => row.TrainAccuracy)),
            ["test_accuracy"] = Numbers(rows.Select(row => row.TestAccuracy)),
        };

        var layers = new List<string>();
        var units = new JsonObject();
        var layerSeries = new JsonObject();
        var unitSeries = new JsonObject();
        var timeUnit = TimeUnit.Epoch;
        if (r.Instantaneous is { } t)
        {
            var (layer, unit, epoch, value) = (t.Layer, t.Unit, t.Time, t.Temperature);
            // Each value's interval, for the page's Δt-weighted window means (absent from old tables).
            var dt = t.Dt.Length == epoch.Length ? t.Dt : null;
            timeUnit = t.TimeUnit;
            foreach (var group in Enumerable.Range(0, layer.Length).Where(i => Kept(epoch[i])).GroupBy(i => layer[i]))
            {
                var whole = group.Where(i => unit[i] < 0).OrderBy(i => epoch[i]).ToArray();
                if (!layers.Contains(group.Key)) layers.Add(group.Key);
                layerSeries[group.Key] = new JsonObject { ["epoch"] = Ints(whole.Select(i => epoch[i])), ["t"] = Numbers(whole.Select(i => value[i])) };
                if (dt is not null) layerSeries[group.Key]!["dt"] = Ints(whole.Select(i => dt[i]));
                var perUnit = group.Where(i => unit[i] >= 0).ToArray();
                if (perUnit.Length == 0) continue;
                int count = perUnit.Max(i => unit[i]) + 1;
                var byEpoch = perUnit.GroupBy(i => epoch[i]).OrderBy(g => g.Key).ToArray();
                var matrix = new JsonArray();
                foreach (var at in byEpoch)
                {
                    var row = Enumerable.Repeat(double.NaN, count).ToArray();
                    foreach (var i in at) row[unit[i]] = value[i];
                    matrix.Add(Numbers(row));
                }
                units[group.Key] = count;
                unitSeries[group.Key] = new JsonObject { ["epoch"] = Ints(byEpoch.Select(g => g.Key)), ["t"] = matrix };
                if (dt is not null) unitSeries[group.Key]!["dt"] = Ints(byEpoch.Select(g => dt[g.First()]));
            }
        }
        // Layers the analysis names but whose T(e) holds no epoch after `since`, or an analysis without T(e).
        foreach (var l in AnalysedLayers(r)) if (!layers.Contains(l)) layers.Add(l);
        foreach (var l in r.UnitLayers)
            if (!units.ContainsKey(l)) units[l] = r.UnitTemperatures(l).Units.Length;

        var payload = new JsonObject
        {
            ["id"] = id,
            ["name"] = r.Name,
            ["time_unit"] = TimeUnits.Name(timeUnit),
            ["last_epoch"] = epochs.Length > 0 ? epochs.Max() : 0,
            ["layers"] = Strings(layers),
            ["units"] = units,
            ["metrics"] = metrics,
            ["layer_temperature"] = layerSeries,
            ["unit_temperature"] = unitSeries,
        };
        if (r.Source is { } source) AddSource(payload, r, source, Kept);
        return payload;
    }

    /// <summary>
    /// What an imported run's payload adds: its time unit from run.json when it is not analysed, the
    /// last snapshot's time as last_epoch, "source" (where it came from), "source_metrics" (each column
    /// its source logged, by name, against "time"; null without source-metrics.parquet) and, without
    /// them, "training_note" saying why there are no training curves.
    /// </summary>
    static void AddSource(JsonObject payload, RunTables r, ImportedSource source, Func<int, bool> kept)
    {
        payload["time_unit"] = r.TimeName;
        payload["last_epoch"] = source.Last;
        payload["source"] = SourcePayload(source);
        var (metrics, note) = SourceMetricsPayload(r.SourceMetrics, kept);
        payload["source_metrics"] = metrics;
        payload["training_note"] = note;
    }

    /// <summary>An imported run's "source": its layout, formats, checkpoints, first and last time and a
    /// description; the report's page and thermo watch send the same.</summary>
    public static JsonObject SourcePayload(ImportedSource source) => new()
    {
        ["kind"] = "imported",
        ["layout"] = source.Layout,
        ["formats"] = Strings(source.Formats),
        ["checkpoints"] = source.Checkpoints,
        ["first"] = source.First,
        ["last"] = source.Last,
        ["description"] = source.Describe(),
    };

    /// <summary>
    /// An imported run's "source_metrics" (each column its source logged, by name, against "time", the
    /// rows at the times <paramref name="kept"/> keeps; null without source-metrics.parquet) and its
    /// "training_note" (why there are no training curves; null when there are): the report's page and
    /// thermo watch send the same.
    /// </summary>
    public static (JsonObject? Metrics, string? Note) SourceMetricsPayload(SourceMetrics? m, Func<int, bool> kept)
    {
        if (m is null)
            return (null, $"no training curves: the run has no {RunLayout.SourceMetricsFile} (its source logged no metrics that thermo import could read)");
        var rows = Enumerable.Range(0, m.Time.Length).Where(i => kept(m.Time[i])).OrderBy(i => m.Time[i]).ToArray();
        var columns = new JsonObject();
        foreach (var (name, values) in m.Columns) columns[name] = Numbers(rows.Select(i => values[i]));
        var metrics = new JsonObject
        {
            ["time_unit"] = TimeUnits.Name(m.TimeUnit),
            ["time"] = Ints(rows.Select(i => m.Time[i])),
            ["columns"] = columns,
        };
        return (metrics, m.Columns.Count > 0 ? null : $"no training curves: {RunLayout.SourceMetricsFile} holds no logged value");
    }

    static string[] AnalysedLayers(RunTables r)
    {
        if (r.Temperature is not { } t) return [];
        var (grouping, layer) = (t.Grouping, t.Layer);
        return Enumerable.Range(0, layer.Length).Where(i => grouping[i] == "layer").Select(i => layer[i]).Distinct().ToArray();
    }

    /// <summary>
    /// The window payload (<c>GET /api/runs/{id}/window</c>) of the window the run was analysed over,
    /// from analysis/temperature.parquet, msd.parquet and fits.parquet: every layer's T, drift and
    /// oscillation; <paramref name="layer"/>'s units (T, drift, oscillation, rank: 1 = hottest);
    /// its MSD against lag, the mean over its units, with α and R² the mean of its units' fitted exponents.
    /// Null when the run has not been analysed.
    /// </summary>
    public static JsonObject? Window(RunTables r, string layer)
    {
        if (r.Temperature is not { } t || r.Window is not { } window) return null;
        var (layerName, grouping, unit, rank) = (t.Layer, t.Grouping, t.Unit, t.Rank);
        var (temperature, drift, osc) = (t.Temperature, t.Drift, t.Oscillation);

        var layers = new JsonObject();
        foreach (var i in Enumerable.Range(0, layerName.Length).Where(i => grouping[i] == "layer"))
            layers[layerName[i]] = new JsonObject { ["t"] = Number(temperature[i]), ["drift"] = Number(drift[i]), ["osc"] = Number(osc[i]) };

        var units = new JsonObject();
        var rows = Enumerable.Range(0, layerName.Length).Where(i => layerName[i] == layer && grouping[i] == "unit").OrderBy(i => unit[i]).ToArray();
        if (rows.Length > 0)
            units[layer] = new JsonObject
            {
                ["t"] = Numbers(rows.Select(i => temperature[i])),
                ["drift"] = Numbers(rows.Select(i => drift[i])),
                ["osc"] = Numbers(rows.Select(i => osc[i])),
                ["rank"] = Ints(rows.Select(i => rank[i])),
            };

        return new JsonObject
        {
            ["from"] = window.From,
            ["to"] = window.To,
            ["layers"] = layers,
            ["units"] = units,
            ["msd"] = Msd(r, layer),
        };
    }

    static JsonObject? Msd(RunTables r, string layer)
    {
        if (r.Msd is not { } m) return null;
        var (layers, lags, msd) = (m.Layer, m.Lag, m.Msd);
        var curve = Enumerable.Range(0, layers.Length).Where(i => layers[i] == layer && double.IsFinite(msd[i]))
            .GroupBy(i => lags[i]).OrderBy(g => g.Key).ToArray();
        if (curve.Length == 0) return null;
        double alpha = double.NaN, r2 = double.NaN;
        if (r.Fits is { } f)
        {
            var (fl, quantity, value, rSquared) = (f.Layer, f.Quantity, f.Value, f.RSquared);
            var picked = Enumerable.Range(0, fl.Length).Where(i => fl[i] == layer && quantity[i] == "alpha" && double.IsFinite(value[i])).ToArray();
            if (picked.Length > 0) (alpha, r2) = (picked.Average(i => value[i]), picked.Average(i => rSquared[i]));
        }
        return new JsonObject
        {
            ["layer"] = layer,
            ["lag"] = Ints(curve.Select(g => g.Key)),
            ["msd"] = Numbers(curve.Select(g => g.Average(i => msd[i]))),
            ["alpha"] = Number(alpha),
            ["r2"] = Number(r2),
        };
    }

    /// <summary>
    /// The static page's data: <c>{"title", "runs": [run payloads, status ok], "windows": {id: {"from", "to",
    /// "layers": {layer: window payload}}}}</c>, one window payload per layer with per-unit rows (or every
    /// analysed layer when none has), for the analysed window.
    /// </summary>
    public static JsonObject StaticData(string title, IReadOnlyList<RunTables> runs)
    {
        var payloads = new JsonArray();
        var windows = new JsonObject();
        for (int k = 0; k < runs.Count; k++)
        {
            var r = runs[k];
            var id = k.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var payload = Run(id, r);
            payload["status"] = "ok";
            payload["message"] = null;
            payloads.Add(payload);
            if (r.Window is not { } w) continue;
            var perLayer = new JsonObject();
            var chosen = r.UnitLayers.Length > 0 ? r.UnitLayers : AnalysedLayers(r);
            foreach (var layer in chosen) perLayer[layer] = Window(r, layer);
            windows[id] = new JsonObject { ["from"] = w.From, ["to"] = w.To, ["layers"] = perLayer };
        }
        return new JsonObject { ["title"] = title, ["runs"] = payloads, ["windows"] = windows };
    }

    /// <summary>
    /// The page as one self-contained file: its stylesheet, the charting library, its script and
    /// <paramref name="data"/> inlined (<c>&lt;script id="thermo-data" type="application/json"&gt;</c>), so it
    /// opens offline from file://.
    /// </summary>
    public static string StaticPage(JsonObject data)
    {
        // The serializer's default encoder writes < > & as \u003C…, so no "</script" can end the data early.
        var json = data.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
        static string Script(string code) => code.Replace("</script", "<\\/script", StringComparison.OrdinalIgnoreCase);
        var html = AssetText("index.html");
        html = Replace(html, "<link rel=\"stylesheet\" href=\"thermo-page.css\">", "<style>\n" + AssetText("thermo-page.css").Replace("</style", "<\\/style", StringComparison.OrdinalIgnoreCase) + "\n</style>");
        html = Replace(html, "<script src=\"echarts.min.js\"></script>",
            $"<script id=\"thermo-data\" type=\"application/json\">{json}</script>\n<script>{Script(AssetText("echarts.min.js"))}</script>");
        html = Replace(html, "<script src=\"thermo-page.js\"></script>", $"<script>{Script(AssetText("thermo-page.js"))}</script>");
        return html;
    }

    static string Replace(string html, string tag, string with)
    {
        int at = html.IndexOf(tag, StringComparison.Ordinal);
        if (at < 0) throw new InvalidOperationException($"the embedded index.html lacks {tag}");
        return string.Concat(html.AsSpan(0, at), with, html.AsSpan(at + tag.Length));
    }
}
