using System.Globalization;
using System.Text.Json;
using Thermo.Pipeline.Protocols;



/// <summary>
/// The pruning paper's full protocol as kept in results/pruning-paper-full: wall time per run (from
/// each manifest's creation to its last update, so resumes and the machine's other load are inside),
/// the whole protocol's projected time, and the ledger's size per run and in all.
/// </summary>
static class LedgerBench
{
    public static void Run(string repoRoot, Action<string, string, string, bool?> report, Func<IEnumerable<double>, double> median)
    {
        var ledger = Path.Combine(repoRoot, "results", "pruning-paper-full");
        if (!Directory.Exists(ledger)) { report("ledger: results/pruning-paper-full", "absent", "—", null); return; }
        var entries = Directory.EnumerateDirectories(ledger).SelectMany(c => PruningLedger.Entries(ledger, Path.GetFileName(c))).ToList();
        var minutes = new List<double>();
        var threads = new HashSet<int>();
        foreach (var entry in entries)
        {
            using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(entry, "run.json")));
            var root = manifest.RootElement;
            var created = root.GetProperty("createdUtc").GetDateTimeOffset();
            var updated = root.GetProperty("updatedUtc").GetDateTimeOffset();
            minutes.Add((updated - created).TotalMinutes);
            threads.Add(root.GetProperty("config").GetProperty("threads").GetInt32());
        }
        if (entries.Count == 0) { report("ledger: results/pruning-paper-full", "no runs yet", "—", null); return; }
        var sizes = entries.Select(e => (double)PruningLedger.Size(e)).ToList();
        string F(double v) => v.ToString("F1", CultureInfo.InvariantCulture);
        report($"ledger: training time per 200-epoch run (median of {entries.Count}, --threads {string.Join("/", threads)}; manifest created → complete, pauses and the machine's other work included)",
            $"{F(median(minutes))} min (range {F(minutes.Min())}–{F(minutes.Max())})", "—", null);
        report("ledger: the whole protocol's training (20 runs) at that median, one run at a time", $"{F(median(minutes) * 20 / 60)} h", "—", null);
        report($"ledger: size per run (median of {entries.Count})", $"{median(sizes) / 1024:F0} KB", "< 1 MB", median(sizes) < 1 << 20);
        report($"ledger: size in all ({entries.Count} of 20 runs, with the tables)",
            $"{Directory.EnumerateFiles(ledger, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) / 1024.0 / 1024:F1} MB", "—", null);
    }
}
