/// Which part of a dataset with a fixed train/test division.
public enum DatasetSplit: String, Sendable, CaseIterable {
    case train, test
}
