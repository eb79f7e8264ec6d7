import UnrollCore
