//! Proofs served by a real Certificate Transparency log (Google Argon 2020), checked by our verifiers.
//!
//! The data is copied verbatim, base64 as served, from github.com/golang/mod
//! `sumdb/tlog/testdata/argon2020/` (`sth.json`, `entries.json`,
//! `proof.json`, `consistency.json`), which `sumdb/tlog/ct_test.go` uses to
//! show Go's tlog verifies real CT proofs; the old root is the one that test
//! hard-codes. These are the get-sth, get-entries?start=10000&end=10000,
//! get-proof-by-hash and get-sth-consistency?first=3654490 responses of
//! https://ct.googleapis.com/logs/argon2020/ct/v1/.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use docket_core::merkle::{Hash, leaf_hash, verify_consistency, verify_inclusion};

use crate::{bit_flips, proof_bit_flips};

// sth.json
const TREE_SIZE: u64 = 961_984_013;
const ROOT: &str = "dwlueapdd7LaOEnX2W2Wp9v2XE+KzejHRQGHwEx0oaM=";

// entries.json: the MerkleTreeLeaf at index 10000.
const LEAF_INDEX: u64 = 10_000;
const LEAF_INPUT: &str = "AAAAAAFelPhqUwAAAAViMIIFXjCCBEagAwIBAgIRAOodHzZdqWIFzYyl/SovhCMwDQYJKoZIhvcNAQELBQAwgZAxCzAJBgNVBAYTAkdCMRswGQYDVQQIExJHcmVhdGVyIE1hbmNoZXN0ZXIxEDAOBgNVBAcTB1NhbGZvcmQxGjAYBgNVBAoTEUNPTU9ETyBDQSBMaW1pdGVkMTYwNAYDVQQDEy1DT01PRE8gUlNBIERvbWFpbiBWYWxpZGF0aW9uIFNlY3VyZSBTZXJ2ZXIgQ0EwHhcNMTcwMjE1MDAwMDAwWhcNMjAwNDE2MjM1OTU5WjBfMSEwHwYDVQQLExhEb21haW4gQ29udHJvbCBWYWxpZGF0ZWQxHTAbBgNVBAsTFFBvc2l0aXZlU1NMIFdpbGRjYXJkMRswGQYDVQQDDBIqLmxhbmRsb3Jkcy5jb20uYXUwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCtPBKKHj4zdrGlCjgTHzb5gx9JCs97DwvBz60f14gDufF2haWbOxyJ0a3opAMsZnOr8HkARVCwxdqG/PTfACcb0QM7FOlzvxGqxataTYiChwvkkif8F9GlJw69HuHgzhusPf1Ytfk3ps1PRC14MkyrS4kwPrk/Le4XdkqRpRw62wG4V6IkbzsNMEOl1H8EgUbfyapdOcVxHjIzvBVy56fBRKG05Fr5wNq3Acak5kYZdNsLhhmlrqAfAjiombW3hb3V5blJdRC0BDdYHv2+zKey6LqJ1FDoXo6IzbzPpC+aifZy47YX+/N1U64Qn5xlDg7mOP8JXfkNJHbU1TJZHif5AgMBAAGjggHhMIIB3TAfBgNVHSMEGDAWgBSQr2o6lFoL2JDqElZz30O0Oija5zAdBgNVHQ4EFgQUNQSLjkoz01I+iuuoC5lgEp0anhcwDgYDVR0PAQH/BAQDAgWgMAwGA1UdEwEB/wQCMAAwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCME8GA1UdIARIMEYwOgYLKwYBBAGyMQECAgcwKzApBggrBgEFBQcCARYdaHR0cHM6Ly9zZWN1cmUuY29tb2RvLmNvbS9DUFMwCAYGZ4EMAQIBMFQGA1UdHwRNMEswSaBHoEWGQ2h0dHA6Ly9jcmwuY29tb2RvY2EuY29tL0NPTU9ET1JTQURvbWFpblZhbGlkYXRpb25TZWN1cmVTZXJ2ZXJDQS5jcmwwgYUGCCsGAQUFBwEBBHkwdzBPBggrBgEFBQcwAoZDaHR0cDovL2NydC5jb21vZG9jYS5jb20vQ09NT0RPUlNBRG9tYWluVmFsaWRhdGlvblNlY3VyZVNlcnZlckNBLmNydDAkBggrBgEFBQcwAYYYaHR0cDovL29jc3AuY29tb2RvY2EuY29tMC8GA1UdEQQoMCaCEioubGFuZGxvcmRzLmNvbS5hdYIQbGFuZGxvcmRzLmNvbS5hdTANBgkqhkiG9w0BAQsFAAOCAQEACyHqxUzrexToY7tOv4+kyGPP2D27P1tQpyzeAl1bPObiMhNK2b9vvBLDWAaqm8c0YL1h+DBdLoWzf3xFsIkTCVCjWJTNSNlcYtgRk6or1s7jWsfXzWqsnPjPPmTIOCw7EfH7Yme3oxPs3UUsmShAgPwNohAtL9GqlqMiKM6v1WU3NHt01jEoNP23LRa6KeNK6AH6WHJykzL223IlhgXjHTeuQj6lR+TNrQXJuhwTXYe+20rrpPQxc1Pn7AqnvfWgmicRQ7gdIcr4V6+ecTvLfNOaJ0ZYe5G5giuAAdTm7F57pk04f4gyZNYKrj88mvbkoriN8b6jcWExtrYO6bm2TwAA";

// proof.json: the audit path of leaf 10000 in the tree of TREE_SIZE.
const AUDIT_PATH: [&str; 30] = [
    "T46AmJsuOM/gFiGlUp+IJJebp+1Z5qratFNW7U0JyOQ=",
    "9Jj1Feodn42uRYEfffkV4HF/EIPFQ5Zo9IwkxbQ2uhk=",
    "D53/1oCNebF4J59HHgioovKZxrmrKcVuCVhy3Izg8Ck=",
    "wSFDgGSrsXRPA+1c8WHoAFCsWeUv8NDyP/Q/SgsyVyY=",
    "516/RcwsgdwdzHn18v1dJHqBkgFUbNhmCIWOGjsMJaE=",
    "naTFY2ajLFgrgs5XUl+zJYZnnlJksLGsA1VYwpLfqbY=",
    "mKBRJo6qao+0Kdh/rhGkZUbHUAxMhrtrclrTpIbNjIg=",
    "Co4ueOFE7lpifLio94irxxsv1wFMMaK3tPu2ZQkHlro=",
    "yRgy800K6JMYCC05sWfqF2kvCg2riT/pVM+nEa6V5+0=",
    "n2O38XJZC8/Wpbwi9HhgVizlUyeUHVZvYyQB1607MRc=",
    "go3tAjuNfNSCj87y2Rg1xOroDknGN1eaf3cgvzObf7Q=",
    "8D0Mj3/J7ySSnFb0afIHYXv6rlOhECnsebY6XKi1IR8=",
    "6rcez46ZU8M5vPiWVMAUfJfAOV0pPP/mch/lYzZhj/M=",
    "2rtIeXrPvSdUyHc5maIgSAVB2BzaKaupWxSAiVayDE4=",
    "nniW/IMFQPN5xw8UsHFn7CRStYbm1gLu7NNa6kkRqJQ=",
    "mRPPi7sQS22MduIEyvcNzCNFqIt6kLwYPkNKrVtIcu8=",
    "JvTivzESNS9wHI8aph5a7uieVmtS/p9PciMZ5D6GyOo=",
    "UTyQd+Ym0wY4zG+qK806bBORwi1CSVvFQ/KknnqoZj8=",
    "hXODrqN+ff+U6zPqRQ+ZQKs6im1fPcxIerDSfNwflhE=",
    "II6GE+WY/DrpZzfHztLwkR46o37zVkNLCyPYlf68zA0=",
    "d609kWWcNBllbA8Jb/ad4XAVVGnScLRmtP8FYyr+Dck=",
    "rikBsP0G0gioXRpBFED2CzQdSLrGPvRd0bEcbEZw1rI=",
    "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=",
    "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
    "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=",
    "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
    "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=",
    "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
    "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=",
    "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
];

// ct_test.go: the root of the tree of OLD_SIZE.
const OLD_SIZE: u64 = 3_654_490;
const OLD_ROOT: &str = "AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=";

// consistency.json: OLD_SIZE → TREE_SIZE.
const CONSISTENCY: [&str; 30] = [
    "80Sfbj6UQEdVSZCSIgh9NMPj3vCBzcc1A48B2crJSWg=",
    "FZcrgAHUk6nNPviJZq8kEK6jCG1d18pJOFE45ZDc1TQ=",
    "Q67reWXmPBo1UfmwBap4Xi9PMPfFdUSSw3WGlRZdG7k=",
    "eJ7CyhR4PxzBxDIsWgrVYW1eFUb9ndgf46tFmiqVrxA=",
    "QrDwp062Grm5WY8KdrhFsBuuNjGzRox2Jb8PmVL5OYw=",
    "XM4YMjMEdLH/XJam/ZWyaP14k3cmsOtnPsOWQ54lW1s=",
    "SGiBh+jOTGccXU48ZzgQ88lRcBmtB4wz4oSDndv2QTg=",
    "WAS6txqNLYKGL1GdBdpqmV42TTfn6cJsuDsqLXuTCNI=",
    "QFmRS0rirUA7ZN3lxFjDncV+E1OCrn3NUB4RCp+5fzc=",
    "Hdbp7It2XBNZmNDBpCN/KPd7vfVqxgzwOosqVIaEA9E=",
    "mxvHL0ZiblBdD7j7pIa1jlfB0gSqfJ6oX0UGo7L0VsU=",
    "q5hjyvoW6TL/PThgcitpDcSTrnKX2p1+aqscqH2euRA=",
    "jTOWDqt3IHj2NVFeezyBz2ofpru+ztEywqKUAfFclKI=",
    "GIRn0w3HqJdvU9j1WVD//eR6lk2AaTVjyzjsJNP8U88=",
    "x52GJvxG81fnQBrgOTbll1A5tz95/LXK0Ag1NhB0r1I=",
    "6/0OqrcTgc3o5dD5PymmoC96lB9yLPFuTHVvLy8fSGk=",
    "Gf+iKLfcXO5l4JEFmsZvSdG5q1uEeWPfYLrds6pmjz0=",
    "DGuaco+McyM3AfRSF6qX7RwSetwe2ieYJmxw5e9rVx0=",
    "2tQJ9V32hnYp+fdpP6TcjmgJmLeNVOMKM0Ml1kk4cNU=",
    "3PapK+IkyJr8I9yAErAmzuZezzLMzsg+PfeRCgNW8NQ=",
    "s6xiYeejb+wtqHA+URJZ2I/SCPyIW8coP6aB00FJbMY=",
    "z9lSpmdTcr5M5ZzKlc4EPh3SrSypKFdk6JUF/UccaZU=",
    "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=",
    "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
    "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=",
    "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
    "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=",
    "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
    "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=",
    "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
];

fn b64_hash(s: &str) -> Hash {
    let bytes = STANDARD.decode(s).expect("published base64");
    Hash(bytes.try_into().expect("published hashes are 32 bytes"))
}

fn b64_hashes(hs: &[&str]) -> Vec<Hash> {
    hs.iter().map(|h| b64_hash(h)).collect()
}

fn ct_leaf() -> Hash {
    leaf_hash(&STANDARD.decode(LEAF_INPUT).expect("published base64"))
}

#[test]
fn a_real_ct_audit_path_verifies() {
    let (proof, root) = (b64_hashes(&AUDIT_PATH), b64_hash(ROOT));
    assert_eq!(
        verify_inclusion(&proof, LEAF_INDEX, TREE_SIZE, &ct_leaf(), &root),
        Ok(())
    );
}

#[test]
fn a_real_ct_audit_path_is_rejected_once_tampered_with() {
    let (proof, root, leaf) = (b64_hashes(&AUDIT_PATH), b64_hash(ROOT), ct_leaf());
    let refused =
        |p: &[Hash], i: u64, n: u64, l: &Hash, r: &Hash| verify_inclusion(p, i, n, l, r).is_err();

    for p in proof_bit_flips(&proof) {
        assert!(refused(&p, LEAF_INDEX, TREE_SIZE, &leaf, &root));
    }
    for bad in bit_flips(&leaf) {
        assert!(refused(&proof, LEAF_INDEX, TREE_SIZE, &bad, &root));
    }
    for bad in bit_flips(&root) {
        assert!(refused(&proof, LEAF_INDEX, TREE_SIZE, &leaf, &bad));
    }
    for i in [LEAF_INDEX - 1, LEAF_INDEX + 1, LEAF_INDEX ^ 2, 0, TREE_SIZE] {
        assert!(refused(&proof, i, TREE_SIZE, &leaf, &root), "index {i}");
    }
    // TREE_SIZE ± 1 has the same shape and so the same root; the signed root
    // is what pins the size.
    for n in [TREE_SIZE * 2, TREE_SIZE / 2, LEAF_INDEX] {
        assert!(refused(&proof, LEAF_INDEX, n, &leaf, &root), "size {n}");
    }
    assert!(refused(&proof[1..], LEAF_INDEX, TREE_SIZE, &leaf, &root));
    assert!(refused(&proof[..29], LEAF_INDEX, TREE_SIZE, &leaf, &root));
    let longer = [proof.as_slice(), &[root][..]].concat();
    assert!(refused(&longer, LEAF_INDEX, TREE_SIZE, &leaf, &root));
}

#[test]
fn a_real_ct_consistency_proof_verifies() {
    let proof = b64_hashes(&CONSISTENCY);
    let (old, new) = (b64_hash(OLD_ROOT), b64_hash(ROOT));
    assert_eq!(
        verify_consistency(&proof, OLD_SIZE, &old, TREE_SIZE, &new),
        Ok(())
    );
}

#[test]
fn a_real_ct_consistency_proof_is_rejected_once_tampered_with() {
    let proof = b64_hashes(&CONSISTENCY);
    let (r1, r2) = (b64_hash(OLD_ROOT), b64_hash(ROOT));
    let refused = |p: &[Hash], old: u64, a: &Hash, new: u64, b: &Hash| {
        verify_consistency(p, old, a, new, b).is_err()
    };

    for p in proof_bit_flips(&proof) {
        assert!(refused(&p, OLD_SIZE, &r1, TREE_SIZE, &r2));
    }
    for bad in bit_flips(&r1) {
        assert!(refused(&proof, OLD_SIZE, &bad, TREE_SIZE, &r2));
    }
    for bad in bit_flips(&r2) {
        assert!(refused(&proof, OLD_SIZE, &r1, TREE_SIZE, &bad));
    }
    for old in [OLD_SIZE - 1, OLD_SIZE + 1, OLD_SIZE ^ 2, 0, TREE_SIZE] {
        assert!(refused(&proof, old, &r1, TREE_SIZE, &r2), "old size {old}");
    }
    // A new size of the same shape (TREE_SIZE ± 1) leads to the same root,
    // which is why the signed root, not the proof, pins the size.
    for new in [TREE_SIZE * 2, TREE_SIZE / 2, OLD_SIZE - 1] {
        assert!(refused(&proof, OLD_SIZE, &r1, new, &r2), "new size {new}");
    }
    assert!(refused(&proof, OLD_SIZE, &r2, TREE_SIZE, &r1));
    assert!(refused(&proof[1..], OLD_SIZE, &r1, TREE_SIZE, &r2));
    assert!(refused(&proof[..29], OLD_SIZE, &r1, TREE_SIZE, &r2));
}
