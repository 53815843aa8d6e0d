using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;
using Thermo.Trainer.Tests;

namespace Thermo.Cli.Tests;

/// <summary>
/// <c>thermo watch</c> through the real executable: a training watched live, its temperatures equal to
/// <c>thermo analyze</c>'s, the event stream and its latency, and the security rules (token, Host,
/// read-only, traversal, runs in error, a snapshot linked outside its run).
/// </summary>
public sealed class WatchTests : IDisposable
{
    const int Epochs = 8;
    readonly TempDir dir = new();
    readonly List<Process> children = [];

    public void Dispose()
    {
        foreach (var p in children)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); p.WaitForExit(5000); } catch (InvalidOperationException) { }
            p.Dispose();
        }
        dir.Dispose();
    }

    Process Start(params string[] args)
    {
        var p = Process.Start(ThermoProcess.StartInfo(dir.Path, args))!;
        children.Add(p);
        return p;
    }

    /// <summary>A run of two 3×2 layers whose snapshots 0..<paramref name="epochs"/> are written with the library's writer.</summary>
    static void SyntheticRun(string run, int epochs)
    {
        Directory.CreateDirectory(RunLayout.Snapshots(run));
        for (int e = 0; e <= epochs; e++) WriteEpoch(run, e);
        WriteManifest(run, epochs);
    }

    static Snapshot SyntheticSnapshot(int epoch)
    {
        var random = new Random(epoch);
        float[] Values(int n) => Enumerable.Range(0, n).Select(i => (float)(i * 0.1 + random.NextDouble() * 0.01 * epoch)).ToArray();
        return new Snapshot(epoch, epoch, [new TensorSnapshot("fc1", "weight", [3, 2], Values(6)), new TensorSnapshot("fc1", "bias", [3], Values(3)), new TensorSnapshot("fc2", "weight", [2, 3], Values(6))]);
    }

    static void WriteEpoch(string run, int epoch) =>
        Snapshots.Write(Path.Combine(RunLayout.Snapshots(run), Snapshots.FileName(epoch)), SyntheticSnapshot(epoch));

    static void WriteManifest(string run, int last) =>
        AtomicFiles.WriteAllText(RunLayout.Manifest(run), $$"""{"config":{"epochs":1000,"snapshotEvery":1},"status":"Running","lastCompleteEpoch":{{last}},"lastStep":{{last}}}""");

    sealed class Watch(string url, int port, string token)
    {
        public string Url = url;
        public int Port = port;
        public string Token = token;
        public readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

        public async Task<JsonElement> Get(string path)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{Port}{path}");
            request.Headers.Add("X-Thermo-Token", Token);
            using var response = await Http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {body}");
            return JsonDocument.Parse(body).RootElement.Clone();
        }

        /// <summary>The status of a request sent byte for byte as given (no client-side normalisation of the path).</summary>
        public int Raw(string method, string target, string? host = null, string? token = null, bool sendToken = true)
        {
            using var client = new TcpClient("127.0.0.1", Port);
            using var stream = client.GetStream();
            var request = new StringBuilder($"{method} {target} HTTP/1.1\r\nHost: {host ?? $"127.0.0.1:{Port}"}\r\n");
            if (sendToken) request.Append($"X-Thermo-Token: {token ?? Token}\r\n");
            request.Append("Content-Length: 0\r\nConnection: close\r\n\r\n");
            stream.Write(Encoding.ASCII.GetBytes(request.ToString()));
            using var reader = new StreamReader(stream, Encoding.ASCII);
            var status = reader.ReadLine() ?? "";
            return int.Parse(status.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    async Task<Watch> StartWatch(params string[] runs)
    {
        var p = Start(["watch", .. runs, "--port", "0", "--poll-ms", "500"]);
        var line = await p.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (line is null) Assert.Fail("watch printed no URL: " + await p.StandardError.ReadToEndAsync());
        var uri = new Uri(line!);
        Assert.Equal("127.0.0.1", uri.Host);
        var token = uri.Query.Split("token=")[1];
        Assert.Equal(43, token.Length); // 32 bytes, URL-safe base64 without padding
        _ = p.StandardError.ReadToEndAsync();
        return new Watch(line!, uri.Port, token);
    }

    /// <summary>Reads the event stream in the background: (run id, last epoch, when received).</summary>
    static BlockingCollection<(string Id, int LastEpoch, long At)> Events(Watch watch, CancellationToken cancel)
    {
        var events = new BlockingCollection<(string, int, long)>();
        _ = Task.Run(async () =>
        {
            using var response = await watch.Http.GetAsync($"http://127.0.0.1:{watch.Port}/api/events?token={watch.Token}", HttpCompletionOption.ResponseHeadersRead, cancel);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel));
            string? kind = null;
            while (await reader.ReadLineAsync(cancel) is { } line)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal)) kind = line[7..];
                else if (line.StartsWith("data: ", StringComparison.Ordinal) && kind == "epoch")
                {
                    var data = JsonDocument.Parse(line[6..]).RootElement;
                    events.Add((data.GetProperty("id").GetString()!, data.GetProperty("last_epoch").GetInt32(), Stopwatch.GetTimestamp()));
                }
            }
        }, cancel);
        return events;
    }

    static JsonElement RunNamed(JsonElement runs, string name) => runs.GetProperty("runs").EnumerateArray().Single(r => r.GetProperty("name").GetString() == name);

    static void Close(double expected, double actual, string what)
    {
        double scale = Math.Max(Math.Abs(expected), 1e-300);
        Assert.True(Math.Abs(expected - actual) / scale <= 1e-12, $"{what}: watch {actual:R}, analyze {expected:R}");
    }

    [Fact]
    public async Task A_training_is_watched_live_and_its_temperatures_equal_analyzes_and_the_server_refuses_what_it_must()
    {
        // A training in progress, a synthetic run, a run that is not there, and a run with a snapshot
        // linked to a file outside it.
        var data = TinyData.WriteMnistLike(dir["data"], 256, 64);
        SyntheticRun(dir["synthetic/a"], 2);
        SyntheticRun(dir["linked"], 1);
        SyntheticRun(dir["outside"], 2);
        File.CreateSymbolicLink(Path.Combine(RunLayout.Snapshots(dir["linked"]), Snapshots.FileName(2)), Path.Combine(RunLayout.Snapshots(dir["outside"]), Snapshots.FileName(2)));
        WriteManifest(dir["linked"], 2);
        // The training's directory does not exist yet when the watch starts: in error until it does.
        var watch = await StartWatch(dir["runs/seed-1"], dir["synthetic"], dir["nowhere"], dir["linked"]);
        var started = Stopwatch.StartNew();
        var training = Start("train", "--quiet", "--data-dir", data, "--epochs", Epochs.ToString(), "--widths", "4,4,8,8", "--threads", "1", "--out", dir["runs/seed-1"]);
        using var cancel = new CancellationTokenSource();
        var events = Events(watch, cancel.Token);

        // The runs: discovered below the given directories, the missing and the linked ones in error.
        var runs = await watch.Get("/api/runs");
        string Id(string name) => RunNamed(runs, name).GetProperty("id").GetString()!;
        Assert.Equal(["seed-1", "a", "nowhere", "linked"], runs.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("name").GetString()));
        Assert.Equal("error", RunNamed(runs, "nowhere").GetProperty("status").GetString());
        Assert.Contains("no such run directory", RunNamed(runs, "nowhere").GetProperty("message").GetString());
        var linked = RunNamed(runs, "linked");
        Assert.Equal("error", linked.GetProperty("status").GetString());
        Assert.Contains("symbolic link", linked.GetProperty("message").GetString());
        Assert.Equal(1, linked.GetProperty("last_epoch").GetInt32());
        Assert.Equal(1, (await watch.Get($"/api/runs/{Id("linked")}")).GetProperty("unit_temperature").GetProperty("fc1").GetProperty("epoch").GetArrayLength());

        // The training's last epoch grows to the final one while the others keep serving.
        var seen = new SortedSet<int>();
        JsonElement seed;
        do
        {
            seed = RunNamed(await watch.Get("/api/runs"), "seed-1");
            seen.Add(seed.GetProperty("last_epoch").GetInt32());
            await Task.Delay(200);
        } while (!seed.GetProperty("complete").GetBoolean() && started.Elapsed < TimeSpan.FromSeconds(90));
        if (!seed.GetProperty("complete").GetBoolean()) Assert.Fail("the training did not complete: " + seed);
        Assert.Equal(Epochs, seed.GetProperty("last_epoch").GetInt32());
        Assert.True(seen.Count >= 2, $"last_epoch seen: {string.Join(", ", seen)}");
        Assert.Equal("ok", RunNamed(await watch.Get("/api/runs"), "a").GetProperty("status").GetString());

        // Epoch events reached the stream for the training.
        var seedId = Id("seed-1");
        var epochEvents = new List<int>();
        while (events.TryTake(out var e, TimeSpan.FromSeconds(3))) if (e.Id == seedId) epochEvents.Add(e.LastEpoch);
        Assert.Contains(Epochs, epochEvents);

        // T per layer and per unit = analyze's instantaneous.parquet, to 1e-12.
        var analyze = ThermoProcess.Run(dir.Path, "analyze", dir["runs/seed-1"], "--window", $"0:{Epochs}", "--msd-layers", "none");
        Assert.True(analyze.Code == 0, analyze.Err);
        var table = Table.Read(Path.Combine(RunLayout.Analysis(dir["runs/seed-1"]), RunLayout.InstantaneousFile), "instantaneous");
        var layers = Table.GetStrings(table, "layer", "instantaneous");
        var units = Table.GetInts(table, "unit", "instantaneous");
        var epochs = Table.GetInts(table, "epoch", "instantaneous");
        var temperatures = Table.GetDoubles(table, "temperature", "instantaneous");
        var series = await watch.Get($"/api/runs/{seedId}");
        Assert.Equal("epoch", series.GetProperty("time_unit").GetString());
        Assert.Equal(Enumerable.Range(0, Epochs + 1), series.GetProperty("metrics").GetProperty("epoch").EnumerateArray().Select(e => e.GetInt32()));
        int compared = 0;
        for (int row = 0; row < layers.Length; row++)
        {
            int index = epochs[row] - 1;
            double watched = units[row] < 0
                ? series.GetProperty("layer_temperature").GetProperty(layers[row]).GetProperty("t")[index].GetDouble()
                : series.GetProperty("unit_temperature").GetProperty(layers[row]).GetProperty("t")[index][units[row]].GetDouble();
            Close(temperatures[row], watched, $"{layers[row]} unit {units[row]} epoch {epochs[row]}");
            compared++;
        }
        Assert.True(compared > 5 * Epochs, $"only {compared} values compared");
        Assert.Equal(series.GetProperty("layers").GetArrayLength(), series.GetProperty("units").EnumerateObject().Count());

        // since=E: only the epochs after E.
        var since = await watch.Get($"/api/runs/{seedId}?since={Epochs - 2}");
        Assert.Equal([Epochs - 1, Epochs], since.GetProperty("layer_temperature").GetProperty("conv1").GetProperty("epoch").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(2, since.GetProperty("metrics").GetProperty("test_loss").GetArrayLength());

        // A window: T the mean of T(e) over a+1..b, drift + oscillation = T, the MSD of the chosen layer.
        var window = await watch.Get($"/api/runs/{seedId}/window?from=1&to={Epochs}&layer=conv2");
        var conv1 = window.GetProperty("layers").GetProperty("conv1");
        var meanT = Enumerable.Range(2, Epochs - 1).Average(e => series.GetProperty("layer_temperature").GetProperty("conv1").GetProperty("t")[e - 1].GetDouble());
        Assert.True(Math.Abs(conv1.GetProperty("t").GetDouble() - meanT) / meanT < 1e-12);
        Assert.True(Math.Abs(conv1.GetProperty("drift").GetDouble() + conv1.GetProperty("osc").GetDouble() - conv1.GetProperty("t").GetDouble()) < 1e-15);
        Assert.Equal(4, window.GetProperty("units").GetProperty("conv1").GetProperty("rank").GetArrayLength());
        var msd = window.GetProperty("msd");
        Assert.Equal("conv2", msd.GetProperty("layer").GetString());
        Assert.Equal(Epochs - 1, msd.GetProperty("lag").GetArrayLength());
        Assert.Equal(JsonValueKind.Number, msd.GetProperty("alpha").ValueKind);
        Assert.Equal(HttpStatusCode.BadRequest, (HttpStatusCode)watch.Raw("GET", $"/api/runs/{seedId}/window?from=5&to=3"));
        Assert.Equal(HttpStatusCode.BadRequest, (HttpStatusCode)watch.Raw("GET", $"/api/runs/{seedId}/window?from=0&to=2&layer=nope"));

        // A new epoch reaches the event stream within 2 s of its snapshot landing.
        var synthetic = dir["synthetic/a"];
        var syntheticId = Id("a");
        while (events.TryTake(out _, TimeSpan.FromMilliseconds(200))) { }
        var latencies = new List<double>();
        for (int e = 3; e <= 6; e++)
        {
            WriteEpoch(synthetic, e);
            WriteManifest(synthetic, e);
            long landed = Stopwatch.GetTimestamp();
            (string Id, int LastEpoch, long At) got;
            do Assert.True(events.TryTake(out got, TimeSpan.FromSeconds(5)), $"no event for epoch {e}");
            while (got.Id != syntheticId || got.LastEpoch < e);
            latencies.Add(Stopwatch.GetElapsedTime(landed, got.At).TotalSeconds);
        }
        Assert.True(latencies.Max() < 2.0, $"latencies {string.Join(", ", latencies)} s");
        // A snapshot being written (a temporary name, or beyond run.json's last complete epoch) is pending, not an error.
        File.WriteAllText(Path.Combine(RunLayout.Snapshots(synthetic), ".epoch=00007.parquet.123.tmp"), "partial");
        WriteEpoch(synthetic, 7);
        await Task.Delay(1200);
        var pending = RunNamed(await watch.Get("/api/runs"), "a");
        Assert.Equal(("ok", 6), (pending.GetProperty("status").GetString(), pending.GetProperty("last_epoch").GetInt32()));

        // Security: token, Host, methods, ids, traversal.
        Assert.Equal(403, watch.Raw("GET", "/api/runs", sendToken: false));
        Assert.Equal(403, watch.Raw("GET", "/api/runs", token: "x" + watch.Token[1..]));
        Assert.Equal(403, watch.Raw("GET", $"/api/runs?token=wrong", sendToken: false));
        Assert.Equal(200, watch.Raw("GET", $"/api/runs?token={watch.Token}", sendToken: false));
        Assert.Equal(200, watch.Raw("GET", $"/?token={watch.Token}", sendToken: false));
        Assert.Equal(200, watch.Raw("GET", "/api/runs", host: $"localhost:{watch.Port}"));
        Assert.Equal(403, watch.Raw("GET", "/api/runs", host: $"evil.example:{watch.Port}"));
        Assert.Equal(403, watch.Raw("GET", "/api/runs", host: "127.0.0.1:1"));
        Assert.Equal(405, watch.Raw("POST", "/api/runs"));
        Assert.Equal(405, watch.Raw("DELETE", $"/api/runs/{seedId}"));
        Assert.Equal(200, watch.Raw("HEAD", "/api/runs"));
        foreach (var target in new[] { "/api/runs/5", "/api/runs/-1", "/api/runs/01", "/api/runs/0x0", "/nope", "/assets/run.json", "/assets/..%2f..%2frun.json",
                     "/%2e%2e/etc/passwd", "/assets/%2Fetc%2Fpasswd", "/assets/../../run.json", "/../run.json", "/assets/..\\run.json", "//etc/passwd" })
            Assert.True(watch.Raw("GET", target) == 404, $"{target} was not refused");
        // The page's public files load without the token (a <script src> cannot send it); nothing else does.
        Assert.Equal(200, watch.Raw("GET", "/echarts.min.js", sendToken: false));
        Assert.Equal(200, watch.Raw("GET", "/thermo-page.js", sendToken: false));
        Assert.Equal(403, watch.Raw("GET", "/run.json", sendToken: false));
        Assert.Equal(404, watch.Raw("GET", "/run.json"));
        Assert.Equal(403, watch.Raw("GET", "/", sendToken: false));
        using var cookies = await watch.Http.GetAsync(watch.Url);
        Assert.Equal(HttpStatusCode.OK, cookies.StatusCode);
        Assert.False(cookies.Headers.Contains("Set-Cookie"));
        Assert.Contains("id=\"epoch-count\"", await cookies.Content.ReadAsStringAsync());   // the interactive page, embedded

        cancel.Cancel();
    }

    [Fact]
    public async Task A_run_imported_from_checkpoints_is_served_in_its_own_time_unit_with_analyzes_temperatures()
    {
        var run = dir["imported"];
        var imported = ThermoProcess.Run(dir.Path, "import", Path.Combine(Repository.Root, "tests", "fixtures", "pytorch", "series", "huggingface"), "--out", run, "--quiet");
        Assert.True(imported.Code == 0, imported.Err);
        var analysed = ThermoProcess.Run(dir.Path, "analyze", run, "--window", "5:80", "--quiet");
        Assert.True(analysed.Code == 0, analysed.Err);
        var watch = await StartWatch(run);
        var series = await watch.Get("/api/runs/0");
        Assert.Equal("ok", series.GetProperty("status").GetString());
        Assert.Equal("step", series.GetProperty("time_unit").GetString());
        Assert.Equal(80, series.GetProperty("last_epoch").GetInt32());
        Assert.True(series.GetProperty("complete").GetBoolean());
        // Unevenly spaced: each interval's T(i) with its own Δt, as analyze computes it.
        var table = Table.Read(Path.Combine(RunLayout.Analysis(run), RunLayout.InstantaneousFile), "instantaneous");
        var layers = Table.GetStrings(table, "layer", "instantaneous.parquet");
        var units = Table.GetInts(table, "unit", "instantaneous.parquet");
        var times = Table.GetInts(table, "epoch", "instantaneous.parquet");
        var values = Table.GetDoubles(table, "temperature", "instantaneous.parquet");
        var conv1 = series.GetProperty("layer_temperature").GetProperty("conv1");
        var served = conv1.GetProperty("epoch").EnumerateArray().Select(e => e.GetInt32()).Zip(conv1.GetProperty("t").EnumerateArray().Select(t => t.GetDouble())).ToArray();
        Assert.Equal([10, 20, 40, 80], served.Select(p => p.First));
        foreach (var (time, t) in served)
        {
            int row = Enumerable.Range(0, layers.Length).Single(i => layers[i] == "conv1" && units[i] == -1 && times[i] == time);
            Close(values[row], t, $"conv1 T at step {time}");
        }
        Assert.True(series.GetProperty("metrics").GetProperty("epoch").GetArrayLength() > 0, "the source's metrics");
        // What the source logged, column by column, as source-metrics.parquet holds it; not again on the next poll.
        var logged = Table.Read(Path.Combine(run, RunLayout.SourceMetricsFile), Thermo.Analysis.Engine.ImportedRun.MetricsTable);
        var loggedTimes = Table.GetInts(logged, "time", RunLayout.SourceMetricsFile);
        var source = series.GetProperty("source_metrics");
        Assert.Equal("step", source.GetProperty("time_unit").GetString());
        var order = Enumerable.Range(0, loggedTimes.Length).OrderBy(i => loggedTimes[i]).ToArray();
        Assert.Equal(order.Select(i => loggedTimes[i]), source.GetProperty("time").EnumerateArray().Select(e => e.GetInt32()));
        var loss = Table.GetDoubles(logged, "loss", RunLayout.SourceMetricsFile);
        Assert.Equal(order.Select(i => double.IsFinite(loss[i]) ? loss[i] : (double?)null),
            source.GetProperty("columns").GetProperty("loss").EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Null ? (double?)null : e.GetDouble()));
        // Where it came from, as the report's page has it, so the page draws what the source logged.
        var from = series.GetProperty("source");
        Assert.Equal(("HuggingFace", 5), (from.GetProperty("layout").GetString(), from.GetProperty("checkpoints").GetInt32()));
        Assert.StartsWith("imported from 5 checkpoints", from.GetProperty("description").GetString());
        // A request after step 40 brings the source's rows after 40; after the last snapshot, none.
        var after40 = await watch.Get("/api/runs/0?since=40");
        Assert.Equal(order.Select(i => loggedTimes[i]).Where(t => t > 40), after40.GetProperty("source_metrics").GetProperty("time").EnumerateArray().Select(e => e.GetInt32()));
        Assert.NotEmpty(after40.GetProperty("source_metrics").GetProperty("time").EnumerateArray());
        var later = await watch.Get("/api/runs/0?since=80");
        Assert.Equal(0, later.GetProperty("source_metrics").GetProperty("time").GetArrayLength());
    }

    [Fact]
    public async Task A_run_that_appears_below_a_watched_directory_later_is_served_too()
    {
        Directory.CreateDirectory(dir["repro/runs"]);
        SyntheticRun(dir["repro/runs/seed-1"], 2);
        var watch = await StartWatch(dir["repro"]);
        Assert.Single((await watch.Get("/api/runs")).GetProperty("runs").EnumerateArray());
        // The reproduction starts its next seed while the page is open.
        SyntheticRun(dir["repro/runs/seed-2"], 3);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        JsonElement runs;
        do
        {
            await Task.Delay(200);
            runs = await watch.Get("/api/runs");
        }
        while (runs.GetProperty("runs").GetArrayLength() < 2 && DateTime.UtcNow < deadline);
        var second = RunNamed(runs, Path.Combine("runs", "seed-2"));
        Assert.Equal("1", second.GetProperty("id").GetString());
        while (RunNamed(await watch.Get("/api/runs"), Path.Combine("runs", "seed-2")).GetProperty("last_epoch").GetInt32() < 3 && DateTime.UtcNow < deadline)
            await Task.Delay(200);
        Assert.Equal(3, RunNamed(await watch.Get("/api/runs"), Path.Combine("runs", "seed-2")).GetProperty("last_epoch").GetInt32());
    }

    [Fact]
    public async Task A_host_other_than_loopback_is_warned_about_and_a_bad_option_is_one_line()
    {
        SyntheticRun(dir["run"], 1);
        var p = Start("watch", dir["run"], "--port", "0", "--host", "0.0.0.0", "--json");
        var line = await p.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var url = JsonDocument.Parse(line!).RootElement.GetProperty("url").GetString()!;
        Assert.StartsWith("http://0.0.0.0:", url);
        p.Kill(entireProcessTree: true);
        Assert.Contains("warning", await p.StandardError.ReadToEndAsync());

        var bad = ThermoProcess.Run(dir.Path, "watch", dir["run"], "--port", "70000");
        Assert.Equal(ExitCodes.BadInput, bad.Code);
        Assert.Contains("--port", bad.Err);
    }
}
