namespace Thermo.Trainer.Data;

/// <summary>
/// Images of one split held in memory as float32 in [0, 1], laid out N×C×H×W, with int64 labels.
/// </summary>
public sealed record ImageSplit(float[] Pixels, long[] Labels, int Channels, int Height, int Width)
{
    public int Count => Labels.Length;
    public int PixelsPerImage => Channels * Height * Width;

    /// <summary>The first <paramref name="limit"/> images (all when null or larger).</summary>
    public ImageSplit Take(int? limit)
    {
        if (limit is null || limit >= Count) return this;
        int n = limit.Value;
        return this with { Pixels = Pixels[..(n * PixelsPerImage)], Labels = Labels[..n] };
    }
}

/// <summary>A data set: train and test splits, class count, and a digest of the exact source bytes.</summary>
public sealed record ImageDataset(string Name, ImageSplit Train, ImageSplit Test, int Classes, string Digest, string Source);
