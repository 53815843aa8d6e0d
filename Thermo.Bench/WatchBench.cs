using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;

/// <summary>
/// <c>thermo watch</c>: the delay from an epoch's snapshot and run.json landing to its server-sent
/// event (median over 20 epochs), the time to load and the server's resident memory with 20 runs of
/// 200 epochs open, and the page's load time in a real browser (headless Chromium driven by
/// tests/browser/time-page.mjs) for one run and for the 20: navigation to the last epoch shown with
/// every chart drawn, median of 3 loads. The runs are synthetic, written with the library's snapshot
/// and metrics writers (fourconv's shapes on MNIST: widths 12, 24, 48, 48, weights and biases, 38k
/// parameters, so the heat map has 48 units), the server the real executable in a child process.
/// </summary>
static class WatchBench
{
    static readonly (string Layer, int[] Shape)[] Shapes =
        [("conv1", [12, 1, 5, 5]), ("conv2", [24, 12, 3, 3]), ("conv3", [48, 24, 3, 3]), ("conv4", [48, 48, 3, 3]), ("fc", [10, 432])];

    /// <summary>Page loads timed per case; the figure is their median.</summary>
    const int Loads = 3;

    public static void Run(string repoRoot, string scratch, bool quick, Action<string, string, string, bool?> report, Func<IEnumerable<double>, double> median)
    {
        int runs = quick ? 4 : 20, epochs = quick ? 40 : 200, timed = 20;
        var root = Path.Combine(scratch, "watch");
        var written = Stopwatch.StartNew();
        Parallel.For(0, runs, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r => Synthetic(Path.Combine(root, $"run-{r:D2}"), epochs, r));
        Console.WriteLine($"watch: {runs} runs of {epochs} epochs written in {written.Elapsed.TotalSeconds:F0} s");

        var loading = Stopwatch.StartNew();
        var (server, uri) = Serve(repoRoot, root);
        try
        {
            var token = uri.Query.Split("token=")[1];
            var api = $"http://127.0.0.1:{uri.Port}";
            using var http = new HttpClient();
            http.DefaultRequestHeaders.Add("X-Thermo-Token", token);
            int[] Last() => JsonDocument.Parse(http.GetStringAsync(api + "/api/runs").Result).RootElement.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("last_epoch").GetInt32()).ToArray();
            while (Last().Any(e => e < epochs)) Thread.Sleep(100);
            var loaded = loading.Elapsed.TotalSeconds;
            long rss = Resident(server.Id);
            report($"thermo watch: {runs} runs × {epochs} epochs (38k parameters each) loaded, from start", $"{loaded:F1} s", "", null);
            report($"thermo watch: server resident memory with {runs} runs × {epochs} epochs open", $"{rss / 1e6:F0} MB", "", null);

            // The page in a browser: one run (a server of its own), then all of them (this server).
            PageLoad(repoRoot, Path.Combine(root, "run-01"), null, 1, epochs, report);
            PageLoad(repoRoot, root, uri, runs, epochs, report);

            // Latency: epochs 201..220 of run 0, each snapshot written (temporary name, rename) then run.json.
            var events = new BlockingCollection<(int Epoch, long At)>();
            using var cancel = new CancellationTokenSource();
            _ = Task.Run(async () =>
            {
                using var stream = new StreamReader(await http.GetStreamAsync(api + "/api/events", cancel.Token));
                while (await stream.ReadLineAsync(cancel.Token) is { } line)
                    if (line.StartsWith("data: ", StringComparison.Ordinal) && JsonDocument.Parse(line[6..]).RootElement is var data && data.GetProperty("id").GetString() == "0")
                        events.Add((data.GetProperty("last_epoch").GetInt32(), Stopwatch.GetTimestamp()));
            });
            Thread.Sleep(500);
            while (events.TryTake(out _)) { }
            var run = Path.Combine(root, "run-00");
            var delays = new List<double>();
            for (int e = epochs + 1; e <= epochs + timed; e++)
            {
                Snapshots.Write(Path.Combine(RunLayout.Snapshots(run), Snapshots.FileName(e)), Snapshot(e, 0));
                long landed = Stopwatch.GetTimestamp();
                Manifest(run, e);
                (int Epoch, long At) got;
                do if (!events.TryTake(out got, TimeSpan.FromSeconds(10))) throw new InvalidOperationException($"no event for epoch {e}");
                while (got.Epoch < e);
                delays.Add(Stopwatch.GetElapsedTime(landed, got.At).TotalMilliseconds);
                Thread.Sleep(300);
            }
            cancel.Cancel();
            report($"thermo watch: snapshot renamed → its epoch event received (median of {timed}; max)",
                $"{median(delays):F0} ms; {delays.Max():F0} ms", "≤ 2000 ms", delays.Max() <= 2000);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            server.WaitForExit();
            server.Dispose();
        }
    }

    /// <summary>Starts <c>thermo watch</c> on <paramref name="path"/> (port 0) and reads the address it prints.</summary>
    static (Process Server, Uri Uri) Serve(string repoRoot, string path)
    {
        var thermo = Path.Combine(repoRoot, "Thermo.Cli", "bin", "Release", "net10.0", "thermo.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { thermo, "watch", path, "--port", "0", "--quiet" }) psi.ArgumentList.Add(a);
        var server = Process.Start(psi)!;
        _ = server.StandardError.ReadToEndAsync();
        var line = server.StandardOutput.ReadLine();
        if (line is null) { server.Kill(entireProcessTree: true); server.WaitForExit(); throw new InvalidOperationException("thermo watch printed no address"); }
        return (server, new Uri(line));
    }

    /// <summary>
    /// The page's load time in headless Chromium (tests/browser/time-page.mjs): from navigation to
    /// #epoch-count showing the last epoch with every chart drawn, <see cref="Loads"/> loads in one
    /// browser, each in a fresh context. With no <paramref name="served"/> address, a server of its own
    /// is started on <paramref name="path"/> and waited for. Skipped, with a line saying why, where
    /// Node, the browser check's packages or the browser are missing.
    /// </summary>
    static void PageLoad(string repoRoot, string path, Uri? served, int runs, int epochs, Action<string, string, string, bool?> report)
    {
        var browserDir = Path.Combine(repoRoot, "tests", "browser");
        var chromium = Environment.GetEnvironmentVariable("CHROMIUM") ?? "/usr/bin/chromium";
        if (!Directory.Exists(Path.Combine(browserDir, "node_modules", "playwright-core")) || !File.Exists(chromium))
        {
            Console.WriteLine("watch: page load time skipped (needs `npm ci --prefix tests/browser` and Chromium; CHROMIUM names another binary)");
            return;
        }
        Process? own = null;
        try
        {
            var uri = served;
            if (uri is null)
            {
                (own, uri) = Serve(repoRoot, path);
                using var http = new HttpClient();
                http.DefaultRequestHeaders.Add("X-Thermo-Token", uri.Query.Split("token=")[1]);
                var runsUrl = $"http://127.0.0.1:{uri.Port}/api/runs";
                while (JsonDocument.Parse(http.GetStringAsync(runsUrl).Result).RootElement.GetProperty("runs").EnumerateArray()
                       .Any(r => r.GetProperty("last_epoch").GetInt32() < epochs)) Thread.Sleep(100);
            }
            var psi = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = browserDir };
            foreach (var a in new[] { "time-page.mjs", uri.ToString(), "--epoch", epochs.ToString(CultureInfo.InvariantCulture), "--loads", Loads.ToString(CultureInfo.InvariantCulture) })
                psi.ArgumentList.Add(a);
            using var node = Process.Start(psi)!;
            var errors = node.StandardError.ReadToEndAsync();
            var output = node.StandardOutput.ReadToEnd();
            node.WaitForExit();
            var result = JsonDocument.Parse(output.Trim().Split('\n')[^1]).RootElement;
            if (result.TryGetProperty("failure", out var failure))
                throw new InvalidOperationException($"time-page.mjs: {failure.GetString()} {errors.Result}");
            var loads = result.GetProperty("loads").EnumerateArray().ToArray();
            var drawn = string.Join(", ", loads.Select(l => $"{l.GetProperty("drawnMs").GetInt32()}"));
            var dom = loads.Select(l => l.GetProperty("domContentLoadedMs").GetInt32()).Order().ToArray()[loads.Length / 2];
            var problems = result.GetProperty("pageErrors").GetArrayLength() + result.GetProperty("consoleErrors").GetArrayLength();
            Console.WriteLine($"watch: page, {runs} run(s): {output.Trim()}");
            report($"thermo watch: page load in headless Chromium, {(runs == 1 ? "1 run" : $"{runs} runs")} × {epochs} epochs: navigation → epoch {epochs} shown, every chart drawn (median of {Loads}; each load's)",
                $"{result.GetProperty("medianMs").GetDouble():F0} ms ({drawn} ms; the first in a just-started browser and before the server's window cache; DOMContentLoaded: median {dom} ms){(problems > 0 ? $"; {problems} page errors" : "")}",
                "", null);
        }
        finally
        {
            if (own is not null) { own.Kill(entireProcessTree: true); own.WaitForExit(); own.Dispose(); }
        }
    }

    static long Resident(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        return 0;
    }

    static Snapshot Snapshot(int epoch, int seed)
    {
        var random = new Random(seed * 100_000 + epoch);
        TensorSnapshot Tensor(string layer, string name, int[] shape)
        {
            var values = new float[shape.Aggregate(1, (a, b) => a * b)];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(Math.Sin(i) + 1e-3 * epoch + 1e-3 * random.NextDouble());
            return new TensorSnapshot(layer, name, shape, values);
        }
        var tensors = Shapes.SelectMany(s => new[] { Tensor(s.Layer, "weight", s.Shape), Tensor(s.Layer, "bias", [s.Shape[0]]) }).ToArray();
        return new Snapshot(epoch, epoch, tensors);
    }

    static void Manifest(string run, int last) =>
        AtomicFiles.WriteAllText(RunLayout.Manifest(run), $$"""{"config":{"epochs":100000,"snapshotEvery":1},"status":"Running","lastCompleteEpoch":{{last}},"lastStep":{{last}}}""");

    static void Synthetic(string run, int epochs, int seed)
    {
        Directory.CreateDirectory(RunLayout.Snapshots(run));
        for (int e = 0; e <= epochs; e++) Snapshots.Write(Path.Combine(RunLayout.Snapshots(run), Snapshots.FileName(e)), Snapshot(e, seed));
        // Training curves of the usual shape, so that the loss and accuracy charts have their lines.
        var rows = Enumerable.Range(1, epochs).Select(e =>
        {
            double decay = Math.Exp(-e / 30.0), wobble = 0.01 * Math.Sin(e + seed);
            return new MetricsRow(e, 469L * e, 0.05 + 2 * decay + wobble, 0.99 - 0.9 * decay, 0.07 + 2 * decay + wobble, 0.98 - 0.9 * decay,
                0.01, 128, 10.0, 1.0, 0.01, 6000.0);
        }).ToArray();
        MetricsTable.Write(RunLayout.Metrics(run), rows);
        Manifest(run, epochs);
    }
}
