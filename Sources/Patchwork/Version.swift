/// Patchwork's version.
public enum PatchworkVersion {
    public static let string = "0.1.0"
}
