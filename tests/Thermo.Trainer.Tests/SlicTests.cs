using Thermo.Trainer.Data;

namespace Thermo.Trainer.Tests;

/// <summary>SLIC superpixels, the graphs made of them, and their cache.</summary>
public class SlicTests
{
    /// <summary>An image of constant regions: the region of each pixel, and the image (region r has intensity (r + 1) / regions).</summary>
    static (int[] Region, float[] Image) Regions(int width, int height, Func<int, int, int> regionAt, int regions)
    {
        var region = new int[width * height];
        var image = new float[width * height];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                region[y * width + x] = regionAt(x, y);
                image[y * width + x] = (regionAt(x, y) + 1f) / regions;
            }
        return (region, image);
    }

    static void AssertSegmentsLieWithinRegions(int[] labels, int[] region)
    {
        foreach (var segment in labels.Select((label, p) => (label, p)).GroupBy(t => t.label))
        {
            var regions = segment.Select(t => region[t.p]).Distinct().ToArray();
            Assert.True(regions.Length == 1, $"segment {segment.Key} spans regions {string.Join(", ", regions)}");
        }
    }

    /// <summary>Labels are 0…n−1 and every segment is 4-connected; returns n.</summary>
    static int AssertContiguousAndConnected(int[] labels, int width, int height)
    {
        int n = labels.Max() + 1;
        Assert.Equal(Enumerable.Range(0, n), labels.Distinct().Order());
        for (int label = 0; label < n; label++)
        {
            int start = Array.IndexOf(labels, label);
            var seen = new HashSet<int> { start };
            var stack = new Stack<int>([start]);
            while (stack.Count > 0)
            {
                int p = stack.Pop(), x = p % width, y = p / width;
                foreach (var (qx, qy) in new[] { (x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1) })
                    if (qx >= 0 && qx < width && qy >= 0 && qy < height && labels[qy * width + qx] == label && seen.Add(qy * width + qx))
                        stack.Push(qy * width + qx);
            }
            Assert.True(seen.Count == labels.Count(l => l == label), $"segment {label} is not 4-connected");
        }
        return n;
    }

    [Fact]
    public void Quadrants_off_the_seed_grid_are_respected_by_every_segment()
    {
        const int width = 30, height = 26;
        // Boundaries at x = 13 and y = 11, between the seeds of a 5 × 4 grid rather than on cell edges.
        var (region, image) = Regions(width, height, (x, y) => (x < 13 ? 0 : 1) + (y < 11 ? 0 : 2), 4);
        var labels = Slic.Segment(image, width, height, SlicParameters.Paper with { Segments = 20 });
        AssertSegmentsLieWithinRegions(labels, region);
        int n = AssertContiguousAndConnected(labels, width, height);
        Assert.InRange(n, 16, 26);
    }

    [Fact]
    public void Stripes_of_uneven_widths_are_respected_by_every_segment()
    {
        const int width = 32, height = 24;
        int[] edges = [5, 14, 21];   // stripes 5, 9, 7 and 11 pixels wide
        var (region, image) = Regions(width, height, (x, _) => edges.Count(e => x >= e), 4);
        var labels = Slic.Segment(image, width, height, SlicParameters.Paper with { Segments = 24 });
        AssertSegmentsLieWithinRegions(labels, region);
        AssertContiguousAndConnected(labels, width, height);
    }

    [Fact]
    public void Segments_are_close_to_the_requested_number_connected_contiguous_and_not_tiny()
    {
        var random = new Random(3);
        var noise = Enumerable.Range(0, 784).Select(_ => random.NextSingle()).ToArray();
        var blank = new float[784];
        var digitLike = Enumerable.Range(0, 784).Select(p => Math.Abs(p % 28 - 14) + Math.Abs(p / 28 - 14) is >= 6 and <= 8 ? 1f : 0f).ToArray();
        foreach (var (name, image) in new[] { ("noise", noise), ("blank", blank), ("a ring", digitLike) })
        {
            var labels = Slic.Segment(image, 28, 28, SlicParameters.Paper);
            int n = AssertContiguousAndConnected(labels, 28, 28);
            Assert.True(n is >= 60 and <= 90, $"{name}: {n} segments for 75 requested");
            // Fragments below half a seed cell (28·28 / 72 seeds / 2 = 5 pixels) are merged away.
            int smallest = labels.GroupBy(l => l).Min(g => g.Count());
            Assert.True(smallest >= 5, $"{name}: a segment of {smallest} pixels survived");
        }
        // Pure: the same image gives the same labels.
        Assert.Equal(Slic.Segment(noise, 28, 28, SlicParameters.Paper), Slic.Segment(noise, 28, 28, SlicParameters.Paper));
    }

    [Fact]
    public void Bad_images_and_parameters_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Slic.Segment(new float[10], 4, 4, SlicParameters.Paper));
        Assert.Throws<ArgumentException>(() => Slic.Segment([], 0, 4, SlicParameters.Paper));
        Assert.Throws<ArgumentOutOfRangeException>(() => Slic.Segment(new float[16], 4, 4, SlicParameters.Paper with { Segments = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Slic.Segment(new float[16], 4, 4, SlicParameters.Paper with { Compactness = double.NaN }));
    }

    [Fact]
    public void A_segmentation_becomes_its_mean_intensities_centroids_and_touching_pairs()
    {
        // 0 1 1
        // 2 3 1      segment 3 touches 1 and 2 by sides, and 0 by a corner only
        // 2 2 1
        int[] labels = [0, 1, 1, 2, 3, 1, 2, 2, 1];
        float[] image = [0.1f, 0.3f, 1, 0.2f, 0.5f, 1, 0, 0.4f, 0.7f];
        var graph = SuperpixelGraph.FromSegments(image, labels, 3, 3);
        Assert.Equal(4, graph.Nodes);
        var tolerance = new FloatTolerance();
        Assert.Equal(new[] { 0.1f, 0.75f, 0.2f, 0.5f }, graph.Intensity, tolerance);
        // centroids of pixel centres in the unit square: segment 1 has pixels (1,0), (2,0), (2,1), (2,2)
        Assert.Equal(new[] { 0.5f / 3, 2.25f / 3, (0.5f + 0.5f + 1.5f) / 3 / 3, 1.5f / 3 }, graph.X, tolerance);
        Assert.Equal(new[] { 0.5f / 3, 1.25f / 3, (1.5f + 2.5f + 2.5f) / 3 / 3, 1.5f / 3 }, graph.Y, tolerance);
        // every pair of segments touches, 0–3 by a corner (8-neighbourhood)
        Assert.Equal(new[] { (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3) }, graph.Sources.Zip(graph.Targets));
        Assert.Throws<ArgumentException>(() => SuperpixelGraph.FromSegments(image, [0, 0, 2, 0, 2, 2, 2, 2, 2], 3, 3));
    }

    sealed class FloatTolerance : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) < 1e-5;
        public int GetHashCode(float value) => 0;
    }

    [Fact]
    public void The_cache_returns_the_computed_graphs_and_other_parameters_or_data_recompute()
    {
        using var dir = new TempDir();
        var data = DataSources.Load("mnist", TinyData.WriteMnistLike(dir["data"], 24, 8), dir.Path, _ => { });
        var parameters = SlicParameters.Paper;
        var log = new List<string>();
        var first = SuperpixelCache.Load(data, parameters, dir["artifacts"], log.Add);
        Assert.Contains(log, m => m.StartsWith("computing SLIC"));
        var cache = SuperpixelCache.DirectoryOf(dir["artifacts"], data, parameters);
        Assert.StartsWith(Path.Combine(dir["artifacts"], "data", "mnist-slic-n75-m0.25-i10-"), cache);
        foreach (var file in new[] { "train-nodes.parquet", "train-edges.parquet", "test-nodes.parquet", "test-edges.parquet", "slic.json" })
            Assert.True(File.Exists(Path.Combine(cache, file)), file);
        Assert.DoesNotContain(Directory.GetDirectories(Path.Combine(dir["artifacts"], "data")), d => Path.GetFileName(d).StartsWith('.'));

        // Round trip: read back, equal to the graphs computed directly.
        log.Clear();
        var second = SuperpixelCache.Load(data, parameters, dir["artifacts"], log.Add);
        Assert.DoesNotContain(log, m => m.StartsWith("computing SLIC"));
        var direct = SuperpixelGraph.OfSplit(data.Train, parameters);
        Assert.Equal(24, second.Train.Length);
        Assert.Equal(8, second.Test.Length);
        for (int i = 0; i < direct.Length; i++)
        {
            Assert.True(direct[i].SameAs(second.Train[i]), $"train graph {i} read back differs");
            Assert.True(first.Train[i].SameAs(second.Train[i]));
        }
        Assert.True(SuperpixelGraph.OfSplit(data.Test, parameters).Zip(second.Test).All(p => p.First.SameAs(p.Second)));

        // Another compactness is another key: computed afresh beside the first.
        log.Clear();
        var other = SuperpixelCache.Load(data, parameters with { Compactness = 0.5 }, dir["artifacts"], log.Add);
        Assert.Contains(log, m => m.StartsWith("computing SLIC"));
        Assert.NotEqual(cache, SuperpixelCache.DirectoryOf(dir["artifacts"], data, parameters with { Compactness = 0.5 }));
        Assert.True(Directory.Exists(cache));

        // Other data (another digest) is another key too.
        Assert.NotEqual(SuperpixelCache.Key(data.Digest, parameters), SuperpixelCache.Key(data.Digest + "x", parameters));

        // A damaged cache is computed again, not trusted.
        File.WriteAllBytes(Path.Combine(cache, "test-edges.parquet"), [1, 2, 3]);
        log.Clear();
        var repaired = SuperpixelCache.Load(data, parameters, dir["artifacts"], log.Add);
        Assert.Contains(log, m => m.Contains("cannot be used"));
        Assert.True(repaired.Test.Zip(second.Test).All(p => p.First.SameAs(p.Second)));
        log.Clear();
        SuperpixelCache.Load(data, parameters, dir["artifacts"], log.Add);
        Assert.DoesNotContain(log, m => m.StartsWith("computing SLIC"));
    }
}
