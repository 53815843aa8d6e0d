using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Thermo.Analysis;

/// <summary>
/// <c>thermo watch</c>: the delay from an epoch's snapshot and run.json landing to its server-sent
/// event (median over 20 epochs), the time to load and the server's resident memory with 20 runs of
/// 200 epochs open. The runs are synthetic, written with the library's snapshot writer (a four-conv
/// model of widths 8, 8, 16, 16: 12k weights), the server the real executable in a child process.
/// </summary>
static class WatchBench
{
    static readonly (string Layer, int[] Shape)[] Shapes =
        [("conv1", [8, 1, 3, 3]), ("conv2", [8, 8, 3, 3]), ("conv3", [16, 8, 3, 3]), ("conv4", [16, 16, 3, 3]), ("fc", [10, 784])];

    public static void Run(string repoRoot, string scratch, bool quick, Action<string, string, string, bool?> report, Func<IEnumerable<double>, double> median)
    {
        int runs = quick ? 4 : 20, epochs = quick ? 40 : 200, timed = 20;
        var root = Path.Combine(scratch, "watch");
        var written = Stopwatch.StartNew();
        Parallel.For(0, runs, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r => Synthetic(Path.Combine(root, $"run-{r:D2}"), epochs, r));
        Console.WriteLine($"watch: {runs} runs of {epochs} epochs written in {written.Elapsed.TotalSeconds:F0} s");

        var thermo = Path.Combine(repoRoot, "Thermo.Cli", "bin", "Release", "net10.0", "thermo.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { thermo, "watch", root, "--port", "0", "--quiet" }) psi.ArgumentList.Add(a);
        var loading = Stopwatch.StartNew();
        using var server = Process.Start(psi)!;
        try
        {
            _ = server.StandardError.ReadToEndAsync();
            var uri = new Uri(server.StandardOutput.ReadLine() ?? throw new InvalidOperationException("thermo watch printed no address"));
            var token = uri.Query.Split("token=")[1];
            var api = $"http://127.0.0.1:{uri.Port}";
            using var http = new HttpClient();
            http.DefaultRequestHeaders.Add("X-Thermo-Token", token);
            int[] Last() => JsonDocument.Parse(http.GetStringAsync(api + "/api/runs").Result).RootElement.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("last_epoch").GetInt32()).ToArray();
            while (Last().Any(e => e < epochs)) Thread.Sleep(100);
            var loaded = loading.Elapsed.TotalSeconds;
            long rss = Resident(server.Id);
            report($"thermo watch: {runs} runs × {epochs} epochs (12k weights each) loaded, from start", $"{loaded:F1} s", "", null);
            report($"thermo watch: server resident memory with {runs} runs × {epochs} epochs open", $"{rss / 1e6:F0} MB", "", null);

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
        var tensors = Shapes.Select(s =>
        {
            var values = new float[s.Shape.Aggregate(1, (a, b) => a * b)];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(Math.Sin(i) + 1e-3 * epoch + 1e-3 * random.NextDouble());
            return new TensorSnapshot(s.Layer, "weight", s.Shape, values);
        }).ToArray();
        return new Snapshot(epoch, epoch, tensors);
    }

    static void Manifest(string run, int last) =>
        AtomicFiles.WriteAllText(RunLayout.Manifest(run), $$"""{"config":{"epochs":100000,"snapshotEvery":1},"status":"Running","lastCompleteEpoch":{{last}},"lastStep":{{last}}}""");

    static void Synthetic(string run, int epochs, int seed)
    {
        Directory.CreateDirectory(RunLayout.Snapshots(run));
        for (int e = 0; e <= epochs; e++) Snapshots.Write(Path.Combine(RunLayout.Snapshots(run), Snapshots.FileName(e)), Snapshot(e, seed));
        Manifest(run, epochs);
    }
}
